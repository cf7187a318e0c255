import type { TemplatedApp } from 'uWebSockets.js';
import { FramehubError } from '../errors.js';
import type { VideoJobs } from '../jobs/video-job.js';
import { httpCredentials, requireRole } from './auth-guard.js';
import type { ServerContext } from './context.js';
import { fileRequest, sendFile } from './file-response.js';
import { handleAsync } from './http-util.js';

/** Longest path under `/api/v1/jobs/<id>/` a video job has: `renditions/1080p/chunks/123456.mp4`. */
const MAX_REST = 64;

/**
 * `GET /api/v1/jobs/<id>/<file>` for a video job's files: `chunks/<n>.mp4`,
 * `renditions/<r>/chunks/<n>.mp4`, `final.mp4`, `renditions/<r>/final.mp4`, `hls/master.m3u8`,
 * `hls/<r>/{index.m3u8,init.mp4,seg_NNN.m4s}`, `poster.jpg`, `sprite.jpg`. Byte ranges, ETag and
 * MIME types come from file-response.ts; which file a path names is decided by VideoJobs.file
 * from fixed patterns, so no URL reaches the file system. Reading needs any valid token (job
 * ids are random UUIDs), like the job itself. uWS routes the more specific
 * `/api/v1/jobs/:id/result/:n` (image results) before this wildcard.
 */
export function registerVideoFiles(app: TemplatedApp, ctx: ServerContext, video: VideoJobs): void {
  app.get('/api/v1/jobs/:id/*', (res, req) => {
    const id = req.getParameter(0) ?? '';
    const prefix = `/api/v1/jobs/${id}/`;
    const url = req.getUrl();
    const rest = url.startsWith(prefix) ? url.slice(prefix.length) : '';
    const credentials = httpCredentials(res, req);
    const request = fileRequest(req);
    handleAsync(ctx, res, async (isAborted, whenAborted) => {
      await requireRole(ctx, 'jobs', credentials, 'viewer');
      if (isAborted()) return;
      const file = rest.length <= MAX_REST ? await video.file(id, rest) : undefined;
      if (isAborted()) return;
      if (!file) {
        throw new FramehubError(
          'NOT_FOUND',
          `no such file of job ${id.slice(0, 64)} (chunks appear as they are ready, the rest when the job is done; files expire with their job)`,
          404,
        );
      }
      await sendFile(res, file, request, isAborted, whenAborted);
    });
  });
}
