import { randomUUID } from 'node:crypto';
import { mkdir, readdir, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import { FramehubError, MediaError, RetryLaterError } from '../errors.js';
import type { Logger } from '../log.js';
import { AUDIO_CONTAINER_NAMES, AUDIO_DEMUXERS, sniffContainer } from '../media/audio-containers.js';
import { progressFraction } from '../media/ffmpeg-progress.js';
import { readLines, runFfmpeg } from '../media/ffmpeg-run.js';
import { type FencedInput, MAX_SOURCE_PIXELS } from '../media/input-fence.js';
import { type MediaInfo, probeMedia } from '../media/media-probe.js';
import {
  playlistKind,
  sniffVideoContainer,
  VIDEO_CONTAINER_NAMES,
  VIDEO_DEMUXERS,
} from '../media/video-containers.js';
import {
  buildChunkEncodeArgs,
  buildConcatArgs,
  buildHlsArgs,
  chunkName,
  ffconcatList,
  masterPlaylist,
  parseSegmentLine,
  pickRenditions,
  type Rendition,
  type SpriteLayout,
  spriteLayout,
} from '../media/video-job-args.js';
import { type Job, type JobStore, jobError } from './job-store.js';
import type { VideoJobOptions } from './video-options.js';

/** The `jobs.video.*` limits (see the config schema for defaults). */
export interface VideoJobLimits {
  maxSeconds: number;
  maxConcurrent: number;
  maxQueued: number;
  timeoutSeconds: number;
  preset: string;
  threads: number;
}

export interface VideoJobsOptions {
  store: JobStore;
  /** Publishes an event on a job's topic (Hub.publishEvent). */
  publish: (topic: string, body: { type: string } & Record<string, unknown>) => void;
  ffmpegPath: string;
  /** Uploads wait here (as files ffmpeg reads) until their job ends. */
  workDir: string;
  /** Each job's outputs go in a directory of its own under this one. */
  resultsDir: string;
  limits: VideoJobLimits;
  /** ffmpeg's nice value above the daemon's (jobs.nice). */
  nice: number;
  /** Told every change of the bytes a video job holds on disk (inputs and outputs), for the gauge. */
  onStoredBytes: (bytes: number) => void;
  log: Pick<Logger, 'warn' | 'error'>;
  /** Told each finished encode's speed, in media seconds per wall second (framehub_ffmpeg_speed_ratio). */
  onSpeed?: (speed: number) => void;
}

/** A file of a job, for GET /api/v1/jobs/<id>/…: what file-response.ts needs. */
export interface VideoFile {
  path: string;
  bytes: number;
  mime: string;
  etag: string;
}

interface VideoRun {
  job: Job;
  dir: string;
  inputPath: string;
  overlayPath: string | undefined;
  videoDemuxer: string;
  overlayDemuxer: string | undefined;
  info: MediaInfo & { durationSeconds: number; video: NonNullable<MediaInfo['video']> };
  options: VideoJobOptions;
  renditions: Rendition[];
  sprite: SpriteLayout | undefined;
  /** Chunks published (chunk_ready sent): only these are served before the job is done. */
  published: number;
  /** 0..1, only ever forward. */
  progress: number;
  done: boolean;
  /** Stops whatever ffmpeg runs for the job with its reason (cancel, deadline, shutdown). */
  stop: AbortController;
  /** Bytes on disk: the upload until the job ends, the outputs until it expires. */
  inputBytes: number;
  outputBytes: number;
}

/** Seconds a probe may take: it opens the file and decodes one frame. */
const PROBE_TIMEOUT_MS = 30_000;

const MIME: Record<string, string> = {
  mp4: 'video/mp4',
  m4s: 'video/iso.segment',
  m3u8: 'application/vnd.apple.mpegurl',
  jpg: 'image/jpeg',
};

/**
 * Video jobs: an upload cut into progressive MP4 chunks published as each is ready, then
 * joined without re-encoding, with an optional HLS (fMP4) package, a poster and a sprite sheet.
 * Everything an upload could be refused for (an unknown container, a playlist, no decodable
 * video, too long) is refused before the job exists; a 202 means ffmpeg has decoded a frame.
 * Jobs encode `jobs.video.maxConcurrent` at a time, niced (`jobs.nice`) with bounded threads;
 * the rest wait `queued` (at most `maxQueued`). DELETE, shutdown and the deadline kill the
 * running ffmpeg's process group.
 */
export class VideoJobs {
  private readonly runs = new Map<string, VideoRun>();
  private readonly queue: VideoRun[] = [];
  private running = 0;
  private totalBytes = 0;

  constructor(private readonly opts: VideoJobsOptions) {}

  /** Empties the results directory: what an earlier process left belongs to jobs that no longer exist. */
  async init(): Promise<void> {
    await rm(this.opts.resultsDir, { recursive: true, force: true });
    await mkdir(this.opts.resultsDir, { recursive: true });
    await mkdir(this.opts.workDir, { recursive: true });
  }

  /** Throws 429 (before the body is read) when the queue is full. */
  admit(): void {
    if (this.queue.length < this.opts.limits.maxQueued || this.running < this.opts.limits.maxConcurrent)
      return;
    throw new RetryLaterError(
      'RATE_LIMITED',
      `${this.queue.length} video jobs are already waiting (jobs.video.maxQueued)`,
      429,
      10,
    );
  }

  /**
   * Checks the upload (container, overlay, a decodable first frame, duration), writes it to
   * the work directory and queues the job. Throws the client's 4xx before any job exists.
   * `cancelled` fires when the client went away before the 202.
   */
  async start(body: Buffer, options: VideoJobOptions, cancelled?: AbortSignal): Promise<Job> {
    if (body.length === 0) throw new FramehubError('EMPTY_BODY', 'the request body is empty', 400);
    const overlayBytes = options.overlayAudioBytes;
    if (overlayBytes >= body.length) {
      throw new FramehubError('INVALID_FIELD', 'overlayAudioBytes must be less than the body length', 400);
    }
    const video = body.subarray(0, body.length - overlayBytes);
    const overlay = overlayBytes > 0 ? body.subarray(body.length - overlayBytes) : undefined;
    const container = sniffVideoContainer(video);
    if (!container) {
      const playlist = playlistKind(video);
      const message = playlist
        ? `the body is ${playlist}: playlists and manifests are never accepted; upload the media itself (${VIDEO_CONTAINER_NAMES})`
        : `not a recognised video container (${VIDEO_CONTAINER_NAMES})`;
      throw new MediaError('MEDIA_UNSUPPORTED', message, 415);
    }
    const audioContainer = overlay && sniffContainer(overlay);
    if (overlay && !audioContainer) {
      const playlist = playlistKind(overlay);
      const message = playlist
        ? `the overlay audio is ${playlist}: playlists and manifests are never accepted`
        : `the overlay audio is not a recognised audio container (${AUDIO_CONTAINER_NAMES})`;
      throw new MediaError('MEDIA_UNSUPPORTED', message, 415);
    }

    const id = randomUUID();
    const inputPath = join(this.opts.workDir, `${id}.video`);
    const overlayPath = overlay ? join(this.opts.workDir, `${id}.audio`) : undefined;
    try {
      await writeFile(inputPath, video);
      if (overlay && overlayPath) await writeFile(overlayPath, overlay);
      // One thread, niced, and no frame over MAX_SOURCE_PIXELS: a probe is an uploader's work.
      const input: FencedInput = {
        demuxer: container.demuxer,
        accepted: VIDEO_DEMUXERS,
        from: inputPath,
        options: ['-threads', '1', '-max_pixels', String(MAX_SOURCE_PIXELS)],
      };
      const probe = {
        ffmpegPath: this.opts.ffmpegPath,
        timeoutMs: PROBE_TIMEOUT_MS,
        nice: this.opts.nice,
        ...(cancelled && { signal: cancelled }),
      };
      const info = await probeMedia({ ...probe, input });
      if (overlayPath && audioContainer) {
        const fenced = { demuxer: audioContainer.demuxer, accepted: AUDIO_DEMUXERS, from: overlayPath };
        await probeMedia({ ...probe, input: fenced, need: 'audio', what: 'overlay audio' });
      }
      const durationSeconds = info.durationSeconds;
      if (durationSeconds === undefined || durationSeconds <= 0) {
        throw new MediaError('MEDIA_DECODE_FAILED', 'the upload does not say how long it is', 422);
      }
      if (durationSeconds > this.opts.limits.maxSeconds) {
        throw new MediaError(
          'MEDIA_TOO_LONG',
          `the video runs ${Math.round(durationSeconds)} s; the longest accepted is ${this.opts.limits.maxSeconds} s (jobs.video.maxSeconds)`,
          422,
        );
      }
      this.admit();
      const v = info.video!;
      const run: VideoRun = {
        job: this.opts.store.create('video', id),
        dir: join(this.opts.resultsDir, id),
        inputPath,
        overlayPath,
        videoDemuxer: container.demuxer,
        overlayDemuxer: audioContainer?.demuxer,
        info: { ...info, durationSeconds, video: v },
        options,
        renditions: pickRenditions(options.renditions, v.height),
        sprite:
          options.thumbnails > 0
            ? spriteLayout(options.thumbnails, durationSeconds, v.width, v.height)
            : undefined,
        published: 0,
        progress: 0,
        done: false,
        stop: new AbortController(),
        inputBytes: 0,
        outputBytes: 0,
      };
      this.runs.set(id, run);
      this.setBytes(run, 'inputBytes', body.length);
      run.job.abort.signal.addEventListener(
        'abort',
        () => run.stop.abort(new MediaError('MEDIA_CANCELLED', 'the job was cancelled', 400)),
        { once: true },
      );
      run.stop.signal.addEventListener('abort', () => this.dequeue(run), { once: true });
      this.queue.push(run);
      this.pump();
      return run.job;
    } catch (err) {
      await this.removeInputs(inputPath, overlayPath);
      throw err;
    }
  }

  /**
   * A file of a job by its URL path under `/api/v1/jobs/<id>/`, or undefined. The path is
   * matched against fixed patterns and the file named from them, never joined from the URL;
   * chunks are served once published, everything else once the job is done.
   */
  async file(id: string, rest: string): Promise<VideoFile | undefined> {
    const run = this.runs.get(id);
    if (!run) return undefined;
    const path = this.pathOf(run, rest);
    if (!path) return undefined;
    const info = await stat(path).catch(() => undefined);
    if (!info?.isFile()) return undefined;
    const ext = path.slice(path.lastIndexOf('.') + 1);
    return {
      path,
      bytes: info.size,
      mime: MIME[ext] ?? 'application/octet-stream',
      etag: `"${id.slice(0, 8)}-${info.size.toString(36)}-${Math.round(info.mtimeMs).toString(36)}"`,
    };
  }

  /** Removes a job's files: when the job expires. */
  async forget(id: string): Promise<void> {
    const run = this.runs.get(id);
    if (!run) return;
    this.runs.delete(id);
    await rm(run.dir, { recursive: true, force: true });
    await this.removeInputs(run.inputPath, run.overlayPath);
    this.setBytes(run, 'inputBytes', 0);
    this.setBytes(run, 'outputBytes', 0);
  }

  /** Stops every job (running or queued); for shutdown. */
  stopAll(): void {
    for (const run of this.runs.values()) {
      if (!run.done) run.stop.abort(new MediaError('MEDIA_CANCELLED', 'the daemon is shutting down', 503));
    }
  }

  private pathOf(run: VideoRun, rest: string): string | undefined {
    const names = new Set(run.renditions.map((r) => r.name));
    const top = run.renditions.at(-1)!.name;
    const chunk = (rendition: string, n: string) =>
      names.has(rendition) && Number(n) < run.published
        ? join(run.dir, rendition, chunkName(Number(n)))
        : undefined;
    let m = /^chunks\/(\d{1,6})\.mp4$/.exec(rest);
    if (m) return chunk(top, m[1]!);
    m = /^renditions\/([0-9a-z]{1,8})\/chunks\/(\d{1,6})\.mp4$/.exec(rest);
    if (m) return chunk(m[1]!, m[2]!);
    if (!run.done) return undefined;
    if (rest === 'final.mp4') return join(run.dir, `final_${top}.mp4`);
    m = /^renditions\/([0-9a-z]{1,8})\/final\.mp4$/.exec(rest);
    if (m) return names.has(m[1]!) ? join(run.dir, `final_${m[1]}.mp4`) : undefined;
    if (rest === 'poster.jpg' || rest === 'sprite.jpg') return join(run.dir, rest);
    if (!run.options.hls) return undefined;
    if (rest === 'hls/master.m3u8') return join(run.dir, 'hls', 'master.m3u8');
    m = /^hls\/([0-9a-z]{1,8})\/(index\.m3u8|init\.mp4|seg_\d{3,6}\.m4s)$/.exec(rest);
    if (m && names.has(m[1]!)) return join(run.dir, 'hls', m[1]!, m[2]!);
    return undefined;
  }

  private dequeue(run: VideoRun): void {
    const at = this.queue.indexOf(run);
    if (at < 0) return;
    this.queue.splice(at, 1);
    void this.end(run, run.stop.signal.reason);
  }

  /** Starts queued jobs while fewer than maxConcurrent run. */
  private pump(): void {
    while (this.running < this.opts.limits.maxConcurrent && this.queue.length) {
      const run = this.queue.shift()!;
      this.running++;
      void this.execute(run)
        .then(
          (result) => this.end(run, undefined, result),
          (err: unknown) => this.end(run, err),
        )
        .finally(() => {
          this.running--;
          this.pump();
        });
    }
  }

  private topic(run: VideoRun): string {
    return `job/${run.job.id}`;
  }

  private status(run: VideoRun, message: string, progress: number): void {
    const now = this.advance(run, progress);
    this.opts.publish(this.topic(run), { type: 'status', message, progress: round(now) });
  }

  /** Moves the job's progress forward (never back: ffmpeg's clock runs ahead of the closed chunks). */
  private advance(run: VideoRun, progress: number): number {
    run.progress = Math.max(run.progress, progress);
    this.opts.store.progress(run.job, run.progress);
    return run.progress;
  }

  private url(run: VideoRun, rest: string): string {
    return `/api/v1/jobs/${run.job.id}/${rest}`;
  }

  private threads(): number {
    return this.opts.limits.threads || os.availableParallelism();
  }

  /** Encode, join and package one job; resolves with its result. */
  private async execute(run: VideoRun): Promise<Record<string, unknown>> {
    const { dir, info, options, renditions } = run;
    const seconds = this.opts.limits.timeoutSeconds;
    const deadline = setTimeout(() => {
      const message = `the job ran past its ${seconds} s deadline (jobs.video.timeoutSeconds)`;
      run.stop.abort(new MediaError('MEDIA_TIMEOUT', message, 504));
    }, seconds * 1000);
    try {
      run.stop.signal.throwIfAborted();
      for (const r of renditions) await mkdir(join(dir, r.name), { recursive: true });
      this.status(run, 'encoding', 0);
      const chunks = await this.encode(run);
      run.stop.signal.throwIfAborted();

      this.status(run, 'joining the chunks', 0.92);
      const finals: Record<string, string> = {};
      for (const r of renditions) {
        const list = join(dir, r.name, 'chunks.ffconcat');
        await writeFile(list, ffconcatList(chunks.length));
        await this.ffmpeg(run, buildConcatArgs(list, join(dir, `final_${r.name}.mp4`)), 'MEDIA_FAILED');
        finals[r.name] = this.url(run, `renditions/${r.name}/final.mp4`);
      }
      let hls: string | null = null;
      if (options.hls) {
        this.status(run, 'packaging HLS', 0.96);
        const variants = [];
        for (const r of renditions) {
          const out = join(dir, 'hls', r.name);
          await mkdir(out, { recursive: true });
          const final = join(dir, `final_${r.name}.mp4`);
          await this.ffmpeg(run, buildHlsArgs(final, out, options.chunkSeconds), 'MEDIA_FAILED');
          const bytes = (await stat(final)).size;
          const width = 2 * Math.round((r.height * info.video.width) / info.video.height / 2);
          variants.push({
            name: r.name,
            width,
            height: r.height,
            bandwidth: (bytes * 8) / info.durationSeconds,
          });
        }
        await writeFile(join(dir, 'hls', 'master.m3u8'), masterPlaylist(variants.reverse()));
        hls = this.url(run, 'hls/master.m3u8');
      }
      run.stop.signal.throwIfAborted();
      this.setBytes(run, 'outputBytes', await dirBytes(dir));
      const top = renditions.at(-1)!.name;
      return {
        chunks,
        url: this.url(run, 'final.mp4'),
        finals,
        hls,
        poster: this.url(run, 'poster.jpg'),
        sprite: run.sprite ? { url: this.url(run, 'sprite.jpg'), ...run.sprite } : null,
        renditions: renditions.map((r) => r.name),
        rendition: top,
        durationSeconds: info.durationSeconds,
      };
    } finally {
      clearTimeout(deadline);
    }
  }

  /** The chunk encode: publishes chunk_ready as each chunk index is closed in every rendition. */
  private async encode(
    run: VideoRun,
  ): Promise<{ index: number; url: string; start_time: number; end_time: number }[]> {
    const { info, options, renditions, dir } = run;
    const args = buildChunkEncodeArgs({
      ffmpegInput: { demuxer: run.videoDemuxer, accepted: VIDEO_DEMUXERS, from: run.inputPath },
      overlay:
        run.overlayPath && run.overlayDemuxer
          ? { demuxer: run.overlayDemuxer, accepted: AUDIO_DEMUXERS, from: run.overlayPath }
          : undefined,
      sourceHasAudio: info.audio !== undefined,
      durationSeconds: info.durationSeconds,
      // The header's duration is what the job was admitted on: a file whose header understates
      // it is read no further than a second past it.
      maxSeconds: Math.min(this.opts.limits.maxSeconds, Math.ceil(info.durationSeconds) + 1),
      renditions,
      chunkSeconds: options.chunkSeconds,
      duck: options.duck,
      preset: this.opts.limits.preset,
      threads: this.threads(),
      dir,
      posterAt: Math.min(1, info.durationSeconds / 2),
      sprite: run.sprite,
    });
    const closed = renditions.map(() => [] as { start: number; end: number }[]);
    const chunks: { index: number; url: string; start_time: number; end_time: number }[] = [];
    const publishReady = () => {
      while (!run.stop.signal.aborted && closed.every((list) => list.length > run.published)) {
        const index = run.published;
        const { start, end } = closed.at(-1)![index]!;
        run.published++;
        const chunk = {
          index,
          url: this.url(run, `chunks/${index}.mp4`),
          start_time: round(start),
          end_time: round(end),
        };
        chunks.push(chunk);
        const progress = this.advance(run, Math.min(0.9, (end / info.durationSeconds) * 0.9));
        const urls = Object.fromEntries(
          renditions.map((r) => [r.name, this.url(run, `renditions/${r.name}/chunks/${index}.mp4`)]),
        );
        this.opts.publish(this.topic(run), {
          type: 'chunk_ready',
          ...chunk,
          progress: round(progress),
          renditions: urls,
        });
        void Promise.all(
          renditions.map((r) =>
            stat(join(dir, r.name, chunkName(index))).then(
              (s) => s.size,
              () => 0,
            ),
          ),
        ).then((sizes) => {
          if (!run.done)
            this.setBytes(run, 'outputBytes', run.outputBytes + sizes.reduce((a, b) => a + b, 0));
        });
      }
    };
    let lastStatus = 0;
    const encodeStarted = performance.now();
    const ff = runFfmpeg({
      ffmpegPath: this.opts.ffmpegPath,
      args,
      signal: run.stop.signal,
      extraPipes: renditions.length,
      nice: this.opts.nice,
      onProgress: (p) => {
        const fraction = progressFraction(p, info.durationSeconds);
        if (fraction === undefined || fraction - lastStatus < 0.1 || p.end) return;
        lastStatus = fraction;
        this.status(run, 'encoding', fraction * 0.9);
      },
    });
    const lists = ff.child.pipes.map((pipe, i) =>
      readLines(pipe, (line) => {
        const segment = parseSegmentLine(line);
        if (!segment || segment.index !== closed[i]!.length) return;
        closed[i]!.push(segment);
        publishReady();
      }),
    );
    await ff.done;
    this.opts.onSpeed?.(info.durationSeconds / ((performance.now() - encodeStarted) / 1000));
    await Promise.all(lists);
    publishReady();
    const counts = closed.map((list) => list.length);
    if (counts[0] === 0 || counts.some((c) => c !== counts[0])) {
      throw new MediaError(
        'MEDIA_DECODE_FAILED',
        'the video produced no complete chunk',
        422,
        `chunks ${counts.join(',')}`,
      );
    }
    return chunks;
  }

  private async ffmpeg(run: VideoRun, args: string[], failure: 'MEDIA_FAILED'): Promise<void> {
    await runFfmpeg({
      ffmpegPath: this.opts.ffmpegPath,
      args,
      signal: run.stop.signal,
      nice: this.opts.nice,
      failure: (_kind, detail) =>
        new MediaError(failure, 'joining or packaging the chunks failed', 500, detail),
    }).done;
  }

  /** Ends a job: complete with its result, or failed/cancelled with its files removed. */
  private async end(run: VideoRun, err: unknown, result?: Record<string, unknown>): Promise<void> {
    if (run.done) return;
    run.done = true;
    await this.removeInputs(run.inputPath, run.overlayPath);
    this.setBytes(run, 'inputBytes', 0);
    const { job } = run;
    if (result && !run.stop.signal.aborted) {
      this.opts.publish(this.topic(run), { type: 'complete', ...result });
      this.opts.store.finish(job, { result });
      return;
    }
    const reason = run.stop.signal.aborted ? run.stop.signal.reason : err;
    const { error, internal } = jobError(reason);
    if (internal) this.opts.log.error({ job: job.id, err: reason }, 'video job failed');
    else if (reason instanceof MediaError && reason.detail) {
      this.opts.log.warn(
        { job: job.id, code: reason.code, detail: reason.detail },
        'video job ffmpeg failed',
      );
    }
    this.opts.publish(this.topic(run), { type: 'error', ...error });
    // A DELETE already made the job `cancelled`; anything else fails it.
    this.opts.store.finish(job, { error });
    await rm(run.dir, { recursive: true, force: true }).catch(() => {});
    run.published = 0;
    this.setBytes(run, 'outputBytes', 0);
  }

  private async removeInputs(...paths: (string | undefined)[]): Promise<void> {
    for (const path of paths) if (path) await rm(path, { force: true }).catch(() => {});
  }

  private setBytes(run: VideoRun, which: 'inputBytes' | 'outputBytes', bytes: number): void {
    this.totalBytes += bytes - run[which];
    run[which] = bytes;
    this.opts.onStoredBytes(this.totalBytes);
  }
}

const round = (x: number) => Math.round(x * 1e6) / 1e6;

/** Bytes of the files under `dir`, at any depth. */
async function dirBytes(dir: string): Promise<number> {
  let total = 0;
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile())
      total += (await stat(join(entry.parentPath, entry.name)).catch(() => ({ size: 0 }))).size;
  }
  return total;
}
