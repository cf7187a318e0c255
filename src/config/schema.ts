import { z } from 'zod';

/** Camera ids double as topic segments and metric labels, so they are kept short and plain. */
export const CAMERA_ID = /^[a-z0-9][a-z0-9_-]{0,63}$/;

const URL_SCHEMES = ['rtsp:', 'rtsps:', 'rtmp:', 'http:', 'https:', 'file:'];

/**
 * `test` is ffmpeg's testsrc2 pattern; anything with a scheme must use a scheme ffmpeg
 * can ingest from; anything else is a file path (looped).
 */
const cameraSource = z
  .string()
  .min(1)
  .superRefine((source, ctx) => {
    if (source === 'test') return;
    const scheme = /^([a-z][a-z0-9+.-]*:)\/\//i.exec(source)?.[1]?.toLowerCase();
    if (scheme && !URL_SCHEMES.includes(scheme)) {
      ctx.addIssue({
        code: 'custom',
        message: `unknown source type "${scheme}" (use "test", a file path, or one of ${URL_SCHEMES.join(' ')})`,
      });
    }
  });

export const cameraSchema = z.strictObject({
  id: z.string().regex(CAMERA_ID, 'must match [a-z0-9][a-z0-9_-]{0,63}'),
  source: cameraSource,
  fps: z.number().int().min(1).max(60).default(15),
  width: z.number().int().min(16).max(7680).multipleOf(2).default(1280),
  height: z.number().int().min(16).max(4320).multipleOf(2).default(720),
  /** JPEG quality ffmpeg uses for the raw frames (ffmpeg's -q:v, 2 best .. 31 worst). */
  quality: z.number().int().min(2).max(31).default(5),
});

export const configSchema = z.strictObject({
  host: z.string().min(1).default('127.0.0.1'),
  port: z.number().int().min(0).max(65535).default(8080),
  cameras: z
    .array(cameraSchema)
    .default([{ id: 'demo', source: 'test', fps: 15, width: 1280, height: 720, quality: 5 }])
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
    })
    .default({ threads: 0, ringBytes: 8 * 1024 * 1024, maxQueuedFrames: 8 }),
  ws: z
    .strictObject({
      /** Largest client message accepted; larger ones close the socket with 1009. */
      maxPayloadBytes: z
        .number()
        .int()
        .min(1024)
        .max(16 * 1024 * 1024)
        .default(64 * 1024),
      /** Bytes a viewer may have buffered before it skips frames. */
      maxBackpressureBytes: z
        .number()
        .int()
        .min(16 * 1024)
        .default(1024 * 1024),
      idleTimeoutSeconds: z.number().int().min(8).max(960).default(60),
    })
    .default({ maxPayloadBytes: 64 * 1024, maxBackpressureBytes: 1024 * 1024, idleTimeoutSeconds: 60 }),
  ffmpegPath: z.string().min(1).optional(),
});

export type Config = z.infer<typeof configSchema>;
export type CameraConfig = z.infer<typeof cameraSchema>;
