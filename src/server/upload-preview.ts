import type { TemplatedApp } from 'uWebSockets.js';
import { FramehubError } from '../errors.js';
import type { UploadJobs } from '../jobs/upload-jobs.js';
import { httpCredentials, requireRole } from './auth-guard.js';
import type { ServerContext } from './context.js';
import { handleAsync, statusLine } from './http-util.js';

/**
 * `GET /api/v1/uploads/<id>/preview`: the newest preview of an upload still arriving (a small
 * JPEG decoded from what has arrived, never the raw bytes), behind the same gate as a job's
 * results. 404 before the first preview and once the upload is whole (its job has the results).
 */
export function registerUploadPreview(app: TemplatedApp, ctx: ServerContext, uploads: UploadJobs): void {
  app.get('/api/v1/uploads/:id/preview', (res, req) => {
    const id = req.getParameter(0) ?? '';
    const credentials = httpCredentials(res, req);
    handleAsync(ctx, res, async (isAborted) => {
      await requireRole(ctx, 'jobs', credentials, 'viewer');
      if (isAborted()) return;
      const jpeg = uploads.latestPreview(id);
      if (!jpeg) throw new FramehubError('NOT_FOUND', 'no preview of this upload (yet, or any more)', 404);
      res.cork(() =>
        res
          .writeStatus(statusLine(200))
          .writeHeader('Content-Type', 'image/jpeg')
          .writeHeader('Cache-Control', 'no-store')
          .end(jpeg),
      );
    });
  });
}
