import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { resolveVadConfig } from '../vad/config.js';
import { authConfigSchema } from './auth.js';
import { CAMERA_ID } from './camera-id.js';
import { parseNetwork } from './ip-address.js';

const URL_SCHEMES = ['rtsp:', 'rtsps:', 'rtmp:', 'http:', 'https:', 'file:'];

/** lavfi sources a `test` camera may draw; all take `size` and `rate`. */
export const TEST_PATTERNS = ['testsrc2', 'smptehdbars', 'rgbtestsrc', 'life'] as const;

/**
 * What `npm start` shows with no config: a wall of four cameras with different patterns,
 * sizes and rates. Only `demo` carries the test tone, which drives the VAD indicator, and live H.264.
 */
const DEMO_CAMERAS = [
  // Live H.264 at the size of the `medium` variant: what the wall's MSE tiles play.
  { id: 'demo', source: 'test', video: 'transcode', videoWidth: 640, videoHeight: 360 },
  { id: 'bars', source: 'test', pattern: 'smptehdbars', width: 640, height: 360, fps: 10, audio: false },
  { id: 'life', source: 'test', pattern: 'life', width: 480, height: 270, fps: 20, audio: false },
  { id: 'rgb', source: 'test', pattern: 'rgbtestsrc', width: 320, height: 240, fps: 5, audio: false },
] as const;

/**
 * Where an ffmpeg camera reads from: `test` is a lavfi pattern (testsrc2 unless `pattern`
 * says otherwise); anything with a scheme must use a scheme ffmpeg can ingest from; anything
 * else is a file path (looped).
 */
const ffmpegSource = z
  .string()
  .min(1)
  .superRefine((source, ctx) => {
    if (source === 'test') return;
    const scheme = /^([a-z][a-z0-9+.-]*:)\/\//i.exec(source)?.[1]?.toLowerCase();
    if (scheme && !URL_SCHEMES.includes(scheme)) {
      ctx.addIssue({
        code: 'custom',
        message: `unknown source type "${scheme}" (use "test", "push", a file path, or one of ${URL_SCHEMES.join(' ')})`,
      });
    }
  });

/**
 * A `cors.origins` entry: `*`, or an origin exactly as a browser sends it in `Origin`
 * (`scheme://host[:port]`, http or https, lower case, no default port, no path), since it is
 * compared as a string.
 */
function checkOrigin(entry: string, ctx: z.RefinementCtx): void {
  if (entry === '*') return;
  let origin: string | undefined;
  try {
    const url = new URL(entry);
    if (url.protocol === 'http:' || url.protocol === 'https:') origin = url.origin;
  } catch {
    // Reported below.
  }
  if (origin === entry) return;
  ctx.addIssue({
    code: 'custom',
    message:
      'must be an origin like https://wall.example.com or http://127.0.0.1:5173 (http or https, ' +
      `no path, no default port)${origin ? `: write "${origin}"` : ''}`,
  });
}

/** A `trustProxy` entry: an address or a network (config/ip-address.ts parseNetwork). */
function checkNetwork(entry: string, ctx: z.RefinementCtx): void {
  const network = parseNetwork(entry);
  if (typeof network === 'string') ctx.addIssue({ code: 'custom', message: network });
}

const cameraId = z.string().regex(CAMERA_ID, 'must match [a-z0-9][a-z0-9_-]{0,63}');
/**
 * Frames per second: what ffmpeg produces, or what a publisher is expected to send. Either way
 * it sets how often variants nobody watches are refreshed (every `fps`-th frame: about 1 s).
 */
const fps = z.number().int().min(1).max(60).default(15);

/** What the `annotated` variant shows as the camera's name; the id when absent. */
const cameraName = z.string().min(1).max(200).optional();

/** A camera whose frames (and optionally audio) come from an ffmpeg child the daemon runs. */
export const ffmpegCameraSchema = z
  .strictObject({
    id: cameraId,
    name: cameraName,
    source: ffmpegSource,
    fps,
    width: z.number().int().min(16).max(7680).multipleOf(2).default(1280),
    height: z.number().int().min(16).max(4320).multipleOf(2).default(720),
    /** JPEG quality ffmpeg uses for the raw frames (ffmpeg's -q:v, 2 best .. 31 worst). */
    quality: z.number().int().min(2).max(31).default(5),
    /**
     * Decode the camera's audio for voice-activity detection. Default: on for `test` (its tone
     * switches on and off), off otherwise, since a source without audio would make ffmpeg fail.
     */
    audio: z.boolean().optional(),
    /** Sample rate of the mono s16le PCM ffmpeg emits for the VAD. */
    audioRate: z.number().int().min(8000).max(48_000).default(16_000),
    /** ffmpeg lavfi pattern of a `test` source (each checked against the bundled ffmpeg 4.1). */
    pattern: z.enum(TEST_PATTERNS).optional(),
    /**
     * Live H.264 on `cam/<id>/video` (off when absent): `transcode` encodes with libx264 from any
     * source, `copy` remuxes an H.264 source (RTSP or file) without decoding it. The camera's one
     * ffmpeg process makes it beside the MJPEG frames.
     */
    video: z.enum(['copy', 'transcode']).optional(),
    /** `transcode`: the H.264 bitrate; default about 0.07 bits per pixel per frame (250 kbit/s at 640×360, 15 fps). */
    videoBitrateKbps: z.number().int().min(50).max(50_000).optional(),
    /** `transcode`: the H.264 picture size; default the camera's width and height. */
    videoWidth: z.number().int().min(16).max(7680).multipleOf(2).optional(),
    videoHeight: z.number().int().min(16).max(4320).multipleOf(2).optional(),
    /** `transcode`: seconds between keyframes, default 2 (a new viewer of a cache-less stream waits up to this). */
    videoGopSeconds: z.number().min(0.5).max(10).optional(),
    /** Send a new viewer the fragments since the last keyframe at once (the GOP cache; default on); off only to measure it. */
    videoGopCache: z.boolean().optional(),
  })
  .refine((cam) => cam.pattern === undefined || cam.source === 'test', {
    message: '"pattern" applies only to source "test"',
    path: ['pattern'],
  })
  .refine(
    (cam) =>
      cam.video === 'transcode' || (cam.videoWidth ?? cam.videoHeight ?? cam.videoBitrateKbps) === undefined,
    {
      message:
        'videoWidth, videoHeight and videoBitrateKbps apply only to video "transcode" (copy keeps the source\'s)',
      path: ['video'],
    },
  )
  .refine((cam) => cam.video !== 'copy' || cam.videoGopSeconds === undefined, {
    message: '"videoGopSeconds" applies only to video "transcode" (copy keeps the source\'s keyframes)',
    path: ['videoGopSeconds'],
  })
  .refine((cam) => cam.video !== 'copy' || !/^(https?|rtmp):\/\/[^/?#]*@/i.test(cam.source), {
    message:
      '"copy" opens the source with -i, so its credentials would show in ffmpeg\'s command line: use "transcode" (which reads them from a pipe) or a URL without credentials',
    path: ['video'],
  })
  .refine((cam) => cam.video !== 'copy' || cam.source !== 'test', {
    message: '"copy" needs an H.264 source; a "test" pattern is raw video: use "transcode"',
    path: ['video'],
  });

/**
 * ffmpeg settings a push camera refuses, each with the reason the refusal gives: silently
 * ignoring one would let an operator believe the daemon scales or re-encodes pushed frames.
 */
const NOT_FOR_PUSH = {
  width: 'pushed frames keep the size the publisher encoded',
  height: 'pushed frames keep the size the publisher encoded',
  quality: 'pushed frames are relayed as the publisher encoded them',
  pattern: 'only a "test" source draws a pattern',
  audioRate: 'a publisher states the rate in each audio record',
  video: 'live H.264 is made by a camera ffmpeg the daemon runs',
  videoBitrateKbps: 'live H.264 is made by a camera ffmpeg the daemon runs',
  videoGopSeconds: 'live H.264 is made by a camera ffmpeg the daemon runs',
  videoWidth: 'live H.264 is made by a camera ffmpeg the daemon runs',
  videoHeight: 'live H.264 is made by a camera ffmpeg the daemon runs',
  videoGopCache: 'live H.264 is made by a camera ffmpeg the daemon runs',
} as const;

const refused = (why: string) =>
  z.never({ error: `not a push camera setting (${why}); remove it` }).optional();

/** A camera whose frames and audio a publisher sends on `/publish`; the daemon runs nothing for it. */
export const pushCameraSchema = z.strictObject({
  id: cameraId,
  name: cameraName,
  source: z.literal('push'),
  fps,
  /** Only `false`: a push camera's audio comes from its publisher's `audio` records, never from ffmpeg. */
  audio: z
    .literal(false, {
      error:
        'a push camera takes its audio from its publisher ("audio" records on /publish): only false is allowed',
    })
    .optional(),
  width: refused(NOT_FOR_PUSH.width),
  height: refused(NOT_FOR_PUSH.height),
  quality: refused(NOT_FOR_PUSH.quality),
  pattern: refused(NOT_FOR_PUSH.pattern),
  audioRate: refused(NOT_FOR_PUSH.audioRate),
  video: refused(NOT_FOR_PUSH.video),
  videoBitrateKbps: refused(NOT_FOR_PUSH.videoBitrateKbps),
  videoGopSeconds: refused(NOT_FOR_PUSH.videoGopSeconds),
  videoWidth: refused(NOT_FOR_PUSH.videoWidth),
  videoHeight: refused(NOT_FOR_PUSH.videoHeight),
  videoGopCache: refused(NOT_FOR_PUSH.videoGopCache),
});

export type FfmpegCameraConfig = z.infer<typeof ffmpegCameraSchema>;
export type PushCameraConfig = z.infer<typeof pushCameraSchema>;
/** A camera, told apart by `source`: `"push"`, or anything else for ffmpeg. */
export type CameraConfig = FfmpegCameraConfig | PushCameraConfig;

/** Whether a camera publishes live H.264 on `cam/<id>/video`. */
export const hasVideo = (cam: CameraConfig): cam is FfmpegCameraConfig & { video: 'copy' | 'transcode' } =>
  !isPushCamera(cam) && cam.video !== undefined;

/** Narrows a camera to its kind (an ffmpeg source's type is any string, so `source === 'push'` alone cannot). */
export const isPushCamera = (cam: CameraConfig): cam is PushCameraConfig => cam.source === 'push';

/**
 * A camera of either kind, chosen by `source` before the kind's own schema runs, so an error
 * names the offending field of that kind (`cameras.0.width`), not a "no union member matched".
 * zod's discriminatedUnion needs a literal on every branch; an ffmpeg source is any string.
 */
export const cameraSchema = z.unknown().transform((input, ctx): CameraConfig => {
  const push = typeof input === 'object' && input !== null && 'source' in input && input.source === 'push';
  const parsed = (push ? pushCameraSchema : ffmpegCameraSchema).safeParse(input);
  if (parsed.success) return parsed.data;
  for (const issue of parsed.error.issues) ctx.addIssue({ ...issue });
  return z.NEVER;
});

/** VAD tuning (every field optional; see src/vad/config.ts for meaning and defaults). */
const vadSchema = z
  .strictObject({
    frameMs: z.union([z.literal(10), z.literal(20), z.literal(30)]).optional(),
    startDb: z.number().optional(),
    stopDb: z.number().optional(),
    floorWindowMs: z.number().min(0).optional(),
    floorSmoothMs: z.number().min(0).optional(),
    minFloorDbfs: z.number().optional(),
    minSpeechMs: z.number().min(0).optional(),
    minSilenceMs: z.number().min(0).optional(),
    preRollMs: z.number().min(0).optional(),
    hangoverMs: z.number().min(0).optional(),
    maxSegmentMs: z.number().min(0).optional(),
  })
  .superRefine((vad, ctx) => {
    // The rules that tie fields together (stopDb <= startDb, segments and floor windows of whole
    // frames) live with the detector; checked here so a bad mix stops start-up, not the first audio.
    try {
      resolveVadConfig({ ...vad, sampleRate: 16_000 });
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: (err as Error).message });
    }
  });

/** Node's timers cap out at 2^31-1 ms (about 24.8 days); a longer delay would fire at once. */
const MAX_TIMER_SECONDS = Math.floor((2 ** 31 - 1) / 1000);

const configFields = z.strictObject({
  host: z.string().min(1).default('127.0.0.1'),
  port: z.number().int().min(0).max(65535).default(8080),
  cameras: z
    .array(cameraSchema)
    .prefault(() => DEMO_CAMERAS.map((c) => ({ ...c })))
    .superRefine((cams, ctx) => {
      const seen = new Set<string>();
      cams.forEach((c, i) => {
        if (seen.has(c.id))
          ctx.addIssue({ code: 'custom', path: [i, 'id'], message: `duplicate camera id "${c.id}"` });
        seen.add(c.id);
      });
    }),
  pool: z
    .strictObject({
      /** Worker threads; 0 means one per core. */
      threads: z.number().int().min(0).max(64).default(0),
      /** Bytes of SharedArrayBuffer ring per worker. */
      ringBytes: z
        .number()
        .int()
        .min(64 * 1024)
        .max(256 * 1024 * 1024)
        .default(8 * 1024 * 1024),
      /** Frames waiting for a worker before new frames are dropped (latest wins). */
      maxQueuedFrames: z.number().int().min(1).max(1000).default(8),
      /** The priority queue (src/pool/priority-queue.ts; README "Worker pool priorities"). */
      queue: z
        .strictObject({
          /** A task waiting this long may run ahead of a higher tier, one per agingMs, never ahead of a queued frame. */
          agingMs: z.number().int().min(100).max(600_000).default(2000),
          /** Tasks a tier may hold waiting; a job over its tier's bound gets 429 before its body is read. */
          maxPerTier: z
            .strictObject({
              urgent: z.number().int().min(1).max(100_000).default(64),
              high: z.number().int().min(1).max(100_000).default(1024),
              normal: z.number().int().min(1).max(100_000).default(256),
              low: z.number().int().min(1).max(100_000).default(1024),
            })
            .prefault({}),
          /** Job tasks (normal, low) running at once; default threads − 1 (at least 1) with cameras, every thread without. */
          maxRunningJobs: z.number().int().min(1).max(64).optional(),
        })
        .prefault({}),
    })
    .prefault({}),
  ws: z
    .strictObject({
      /** Largest viewer message accepted on /ws; larger ones close the socket with 1009. */
      maxPayloadBytes: z
        .number()
        .int()
        .min(1024)
        .max(1024 * 1024)
        .default(64 * 1024),
      /** Largest publisher message (a frame or an audio chunk) accepted on /publish. */
      publisherMaxPayloadBytes: z
        .number()
        .int()
        .min(64 * 1024)
        .max(64 * 1024 * 1024)
        .default(8 * 1024 * 1024),
      /** A peer silent this long is pinged; a dead one is closed within twice this. */
      idleTimeoutSeconds: z.number().int().min(8).max(960).default(60),
      /** With auth on, a connection without a token must send hello with one within this time. */
      authTimeoutMs: z.number().int().min(100).max(60_000).default(5000),
      /**
       * Sockets waiting for their `hello` token, across all IPs and per IP. They have their own
       * budget and join the viewer limits only once authenticated, so tokenless sockets never
       * take a viewer's slot.
       */
      maxUnauthenticated: z.number().int().min(1).default(512),
      maxUnauthenticatedPerIp: z.number().int().min(1).default(16),
      /** Subscription changes (`sub`/`unsub` topics) per second per connection, and the burst allowed. */
      subscribeRatePerSecond: z.number().min(0.1).default(20),
      subscribeBurst: z.number().int().min(1).default(64),
    })
    .prefault({}),
  viewers: z
    .strictObject({
      /** Buffered bytes above which a viewer skips frames (latest frame wins). */
      softBufferBytes: z
        .number()
        .int()
        .min(16 * 1024)
        .default(256 * 1024),
      /**
       * The soft limit of a viewer of live video (a keyframe or a new viewer's cached GOP is a
       * burst a healthy link drains at once); half of it bounds each camera's GOP cache.
       */
      videoSoftBufferBytes: z
        .number()
        .int()
        .min(64 * 1024)
        .default(2 * 1024 * 1024),
      /** Buffered bytes that, held for slowCloseMs, close the viewer (WS 4008). */
      hardBufferBytes: z
        .number()
        .int()
        .min(64 * 1024)
        .default(4 * 1024 * 1024),
      slowCloseMs: z.number().int().min(100).default(10_000),
      maxConnections: z.number().int().min(1).default(20_000),
      maxConnectionsPerIp: z.number().int().min(1).default(1000),
      connectRatePerIp: z.number().min(0.1).default(100),
      connectBurstPerIp: z.number().int().min(1).default(200),
      maxTopicsPerConnection: z.number().int().min(1).max(1024).default(64),
      sseHeartbeatSeconds: z.number().min(1).max(300).default(15),
      /** Events (vad, job, system) kept per topic for Last-Event-ID and hello resume. */
      historyPerTopic: z.number().int().min(1).max(100_000).default(256),
      /** variant=auto: slow time that steps a viewer down, clean time that steps it back up. */
      adaptiveDownMs: z.number().int().min(100).default(2000),
      adaptiveUpMs: z.number().int().min(100).default(15_000),
    })
    .prefault({}),
  images: z
    .strictObject({
      /**
       * Largest image accepted (width × height from the header, checked before any decode), for
       * frames pushed on /publish and for image jobs. About 40 MP: 8K is 33 MP.
       */
      maxPixels: z.number().int().min(1024).max(268_402_689).default(40_000_000),
    })
    .prefault({}),
  shutdown: z
    .strictObject({
      /** Graceful stop's hard deadline: past it workers are terminated, children killed, and the process exits. */
      deadlineMs: z.number().int().min(500).max(120_000).default(10_000),
    })
    .prefault({}),
  auth: authConfigSchema.optional(),
  /**
   * Reverse proxies whose forwarding headers are believed (README "Behind a reverse proxy"):
   * addresses or networks (`10.0.0.0/8`, `::1`). Only a request whose peer is one of them has
   * its client address taken from `X-Forwarded-For` or `Forwarded`. Empty: nobody's.
   */
  trustProxy: z.array(z.string().superRefine(checkNetwork)).max(256).default([]),
  /**
   * With auth off, a request that came through a proxy (`X-Forwarded-For`, `Forwarded` or
   * `Via`) is refused admin endpoints and publishing, unless this is true and its peer is in
   * `trustProxy`: the operator then vouches for everyone the proxy lets through.
   */
  authOffTrustsProxy: z.boolean().default(false),
  /**
   * Browsers on other origins (src/server/cors.ts): pages on these origins get the CORS headers
   * for EventSource, fetch and `<img crossorigin>`, and may open WebSockets. Empty: same-origin
   * only. `["*"]` (alone, and only with auth on) allows every origin.
   */
  cors: z
    .strictObject({
      origins: z
        .array(z.string().superRefine(checkOrigin))
        .max(256)
        .default([])
        .refine((list) => !list.includes('*') || list.length === 1, {
          message: '"*" must be the only entry: it already allows every origin',
        }),
    })
    .prefault({}),
  vad: vadSchema.prefault({}),
  jobs: z
    .strictObject({
      /** Largest upload accepted by POST /api/v1/jobs/*. */
      maxUploadBytes: z
        .number()
        .int()
        .min(1024)
        .default(100 * 1024 * 1024),
      /** Jobs running at once; more get 429 with Retry-After. */
      maxActive: z.number().int().min(1).max(64).default(4),
      /** Finished jobs (and their results) are kept this long, then forgotten. */
      ttlSeconds: z.number().int().min(10).max(MAX_TIMER_SECONDS).default(3600),
      /** A job still running after this long is killed and fails with JOB_TIMEOUT. */
      timeoutSeconds: z.number().int().min(1).max(MAX_TIMER_SECONDS).default(600),
      /**
       * Slowest upload accepted, averaged from the request's start after a grace period; a slower
       * one is cut off with 408 so it cannot hold a job slot.
       */
      minUploadBytesPerSecond: z
        .number()
        .int()
        .min(0)
        .default(32 * 1024),
      uploadGraceSeconds: z.number().int().min(1).max(600).default(10),
      /** Decoded audio longer than this fails the job (AUDIO_TOO_LONG); 4 hours. */
      maxAudioSeconds: z
        .number()
        .int()
        .min(1)
        .max(1_000_000)
        .default(4 * 3600),
      /**
       * Largest upsampling to the 16 kHz analysis rate: a header declaring 1 Hz would turn a
       * few KB into hours of samples. 16 kHz / 8 = 2 kHz is the lowest input rate accepted.
       */
      maxUpsampleRatio: z.number().min(1).max(1000).default(8),
      /**
       * Where job results (and tus uploads) live on disk. Results are removed with their job
       * (`ttlSeconds` after it finishes); what is left from an earlier run is removed at start.
       */
      dataDir: z.string().min(1).default(join(tmpdir(), 'framehub')),
      /**
       * An image job still in a worker after this long is stopped (its job process is killed) and
       * fails with JOB_TIMEOUT: a hostile image never holds a worker from live frames longer.
       */
      imageTimeoutSeconds: z.number().int().min(1).max(3600).default(60),
      /**
       * How far the processes image jobs and previews run in (one per pool worker that took
       * one) are niced below the daemon, to at most 19: the OS gives live frames and the main
       * thread the CPU first. 0 runs them at the daemon's own priority.
       */
      nice: z.number().int().min(0).max(19).default(10),
      /** Video jobs (POST /api/v1/jobs/video): one ffmpeg per job, niced by `nice`. */
      video: z
        .strictObject({
          /** A source longer than this (from its header) is refused with MEDIA_TOO_LONG. */
          maxSeconds: z.number().int().min(1).max(86_400).default(3600),
          /** Video jobs encoding at once; the rest wait `queued`. */
          maxConcurrent: z.number().int().min(1).max(16).default(1),
          /** Video jobs waiting for a turn; past it a new one gets 429 before its body is read. */
          maxQueued: z.number().int().min(0).max(256).default(2),
          /** A video job still running after this long is killed and fails with MEDIA_TIMEOUT. */
          timeoutSeconds: z.number().int().min(1).max(MAX_TIMER_SECONDS).default(1800),
          /**
           * libx264 preset: faster presets cost less CPU per second of video. `superfast` makes a
           * 10 s 720p chunk in about 2 s on 2 cores (`veryfast`: 3.4 s), for a first chunk within 3 s.
           */
          preset: z
            .enum(['ultrafast', 'superfast', 'veryfast', 'faster', 'fast', 'medium'])
            .default('superfast'),
          /** ffmpeg's `-threads` per job; 0 means one per core (the job is niced: cameras run first). */
          threads: z.number().int().min(0).max(64).default(0),
        })
        .prefault({}),
    })
    .prefault({}),
  /** Resumable uploads over tus 1.0 (`/api/v1/uploads/`); a completed upload starts an image job. */
  uploads: z
    .strictObject({
      /** Where uploads are kept (survives restarts); default `<jobs.dataDir>/uploads`. */
      dir: z.string().min(1).optional(),
      maxUploadBytes: z
        .number()
        .int()
        .min(1024)
        .default(100 * 1024 * 1024),
      /** Uploads stored at once, complete or not; more get 429. */
      maxUploads: z.number().int().min(1).max(10_000).default(64),
      /** An upload nobody writes to for this long expires (410, then removed). */
      expireSeconds: z.number().int().min(60).max(MAX_TIMER_SECONDS).default(86_400),
      /** The Upload-Metadata header's size limit. */
      maxMetadataBytes: z.number().int().min(256).max(65_536).default(4096),
    })
    .prefault({}),
  /** Several nodes on one Redis (README "Scaling out"); without `redisUrl`: one node, no Redis. */
  cluster: z
    .strictObject({
      /** `redis://[user:password@]host:port[/db]` (or `rediss://`); FRAMEHUB_REDIS_URL / --redis-url set it. */
      redisUrl: z
        .string()
        .regex(
          /^rediss?:\/\/[^,]+(,\s*rediss?:\/\/[^,]+)*$/,
          'must be a redis:// or rediss:// URL (a comma-separated list of them for a Redis Cluster)',
        )
        .optional(),
      /**
       * `redisUrl` is a Redis Cluster (its URLs are seeds; the rest is discovered): keys route
       * by slot, and frames cross by sharded pub/sub when the servers have it (Redis 7).
       * FRAMEHUB_REDIS_CLUSTER / --redis-cluster set it.
       */
      redisCluster: z.boolean().default(false),
      /** false: a pure edge that takes no camera (serves viewers only); --ingest=false. */
      ingest: z.boolean().default(true),
      /** This node's name in Redis keys and the status API; default random per process. */
      nodeId: z
        .string()
        .regex(/^[A-Za-z0-9_.-]{1,64}$/, 'must match [A-Za-z0-9_.-]{1,64}')
        .optional(),
      /** Camera lease period: renewed every third of it; a dead owner's cameras move within 2 periods. */
      leaseMs: z.number().int().min(300).max(60_000).default(3000),
      /** How long a topic's latest frame stays in Redis for first frames on other nodes. */
      latestFrameTtlMs: z.number().int().min(500).max(60_000).default(5000),
    })
    .prefault({}),
  ffmpegPath: z.string().min(1).optional(),
  /** pino level; FRAMEHUB_LOG_LEVEL sets it. */
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** VAD energy backend: `auto` (native when the addon loads, else JS), `native` or `js`; FRAMEHUB_VAD_BACKEND sets it. */
  vadBackend: z.enum(['auto', 'native', 'js']).default('auto'),
});

/** The whole config, with the rules that tie top-level fields together. */
export const configSchema = configFields.superRefine((config, ctx) => {
  if (config.cluster.redisUrl?.includes(',') && !config.cluster.redisCluster) {
    ctx.addIssue({
      code: 'custom',
      path: ['cluster', 'redisUrl'],
      message:
        'names several servers: that is a Redis Cluster, set cluster.redisCluster (--redis-cluster=true)',
    });
  }
  // An opt-in that names no proxy would silently do nothing: refused, so the mistake shows.
  if (config.authOffTrustsProxy && config.trustProxy.length === 0) {
    ctx.addIssue({
      code: 'custom',
      path: ['authOffTrustsProxy'],
      message: 'needs the proxy in trustProxy: only requests from a trusted proxy keep the anonymous admin',
    });
  }
});

export type Config = z.infer<typeof configSchema>;
