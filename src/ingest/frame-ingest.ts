import type { Counter } from 'prom-client';
import type { CameraConfig } from '../config/schema.js';
import { type ImageHeader, readImageHeader, readJpegHeader } from '../image/image-header.js';
import { FRAME_VARIANTS, type FrameVariant, isRefreshed } from '../image/variant-names.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics/metrics.js';
import type { WorkerPool } from '../pool/worker-pool.js';

export interface FrameIngestOptions {
  /** images.maxPixels: the largest width × height a frame header may claim. */
  maxPixels: number;
  metrics: Metrics;
  log: Logger;
  /**
   * Whether the camera's VAD says speech right now, for the `annotated` variant's indicator.
   * Absent: no camera is ever speaking (a daemon without audio).
   */
  speechOf?: (camera: string) => boolean;
}

/** Why a frame was not taken, for the publisher's error record. */
export interface FrameRefusal {
  ok: false;
  code: 'IMAGE_TOO_LARGE' | 'BAD_MESSAGE' | 'CORRUPT_IMAGE';
  message: string;
}
/** Whether a frame was taken for processing (it may still be dropped later, as any live frame). */
export type FrameVerdict = { ok: true } | FrameRefusal;

const ACCEPTED: FrameVerdict = { ok: true };

/**
 * Where camera frames enter the pipeline, from an ffmpeg supervisor or a WS publisher.
 * Numbers frames per camera (the seq every variant topic carries) and asks the pool only for
 * the variants someone is watching, plus every refreshed variant (all but `annotated`) about
 * once a second so snapshots and new subscribers always find a recent frame. `annotated` is
 * made only while watched: its overlay says whether the camera speaks at that frame, so the
 * name and speech state go with the task.
 *
 * Every frame's JPEG header is read here, on the main thread and before any decode: a frame
 * over images.maxPixels, a progressive one, or one without a readable frame header never
 * reaches a worker (counted as `framehub_frames_dropped_total{reason="refused"}`). Frames from
 * our own ffmpeg are baseline at their configured size, so they always pass; they are checked
 * anyway: the check costs a few dozen byte reads, and with one path the worker never needs to
 * know where a frame came from. A refused frame still takes its seq, so viewers see the gap.
 */
export class FrameIngest {
  private readonly seqs = new Map<string, number>();
  /** framehub_camera_frames_in_total per camera, bound on its first frame. */
  private readonly framesIn = new Map<string, Counter.Internal>();
  private readonly refused;
  /** ffmpeg cameras warned about: a refused frame of theirs means a broken encoder, said once. */
  private readonly warned = new Set<string>();

  constructor(
    private readonly pool: WorkerPool,
    private readonly hasDemand: (topic: string) => boolean,
    private readonly opts: FrameIngestOptions,
  ) {
    this.refused = opts.metrics.framesDropped.labels({ reason: 'refused' });
  }

  /** The last seq a camera's frames took (0: none yet). */
  seqOf(camera: string): number {
    return this.seqs.get(camera) ?? 0;
  }

  /**
   * Makes a camera's next frame seq at least `seq + 1`. A cluster node that takes a camera over
   * continues past the previous owner's last seq, so viewers on every node see seq increase.
   */
  seedSeq(camera: string, seq: number): void {
    if (seq > (this.seqs.get(camera) ?? 0)) this.seqs.set(camera, seq);
  }

  /**
   * Why an image that is not a JPEG frame is refused: IMAGE_TOO_LARGE when its header (PNG)
   * claims more than images.maxPixels, as for a frame, else BAD_MESSAGE. Nothing is decoded.
   */
  refuseNonJpeg(data: Uint8Array): FrameRefusal {
    const header = readImageHeader(data);
    if (header && header.width * header.height > this.opts.maxPixels) {
      this.refused.inc();
      return {
        ok: false,
        code: 'IMAGE_TOO_LARGE',
        message: `image is ${header.width}x${header.height}; at most ${this.opts.maxPixels} pixels (images.maxPixels)`,
      };
    }
    return { ok: false, code: 'BAD_MESSAGE', message: '"data" must be JPEG bytes' };
  }

  /**
   * @example
   *   ingest.submit(cam, jpeg, Date.now()) // { ok: false, code: 'IMAGE_TOO_LARGE', message: '…' }
   */
  submit(cam: CameraConfig, jpeg: Uint8Array, ts: number): FrameVerdict {
    const seq = (this.seqs.get(cam.id) ?? 0) + 1;
    this.seqs.set(cam.id, seq);
    let counter = this.framesIn.get(cam.id);
    if (!counter) {
      counter = this.opts.metrics.framesIn.labels(cam.id);
      this.framesIn.set(cam.id, counter);
    }
    counter.inc();
    const admission = admit(jpeg, this.opts.maxPixels);
    if (!admission.ok) {
      this.refused.inc();
      if (cam.source !== 'push' && !this.warned.has(cam.id)) {
        this.warned.add(cam.id);
        this.opts.log.warn(
          { camera: cam.id, code: admission.code, reason: admission.message },
          'camera frame refused',
        );
      }
      return admission;
    }
    const refresh = seq % cam.fps === 1 || cam.fps === 1;
    const variants = FRAME_VARIANTS.filter(
      (v: FrameVariant) => v === 'raw' || (refresh && isRefreshed(v)) || this.hasDemand(`cam/${cam.id}/${v}`),
    );
    const annotation = variants.includes('annotated')
      ? { label: cameraLabel(cam), speech: this.opts.speechOf?.(cam.id) ?? false }
      : undefined;
    // A private ArrayBuffer the worker can take by transfer (the pipe's Buffer is pooled).
    const owned = new ArrayBuffer(jpeg.byteLength);
    new Uint8Array(owned).set(jpeg);
    const { width, height } = admission.header;
    this.pool.submitFrame({
      camera: cam.id,
      seq,
      ts,
      width,
      height,
      maxPixels: this.opts.maxPixels,
      jpeg: owned,
      variants,
      annotation,
    });
    return ACCEPTED;
  }
}

/** What the overlay names a camera by: its `name` when the config gives one, else its id. */
function cameraLabel(cam: { id: string; name?: string }): string {
  return cam.name ?? cam.id;
}

/** The frame's header when a worker may decode the frame, or why it may not. */
function admit(jpeg: Uint8Array, maxPixels: number): { ok: true; header: ImageHeader } | FrameRefusal {
  const header = readJpegHeader(jpeg);
  if (!header) {
    return { ok: false, code: 'CORRUPT_IMAGE', message: 'no JPEG frame header (SOFn) before the first scan' };
  }
  const { width, height } = header;
  if (width * height > maxPixels) {
    return {
      ok: false,
      code: 'IMAGE_TOO_LARGE',
      message: `frame is ${width}x${height}; at most ${maxPixels} pixels (images.maxPixels)`,
    };
  }
  if (header.buffersWholeImage) {
    return {
      ok: false,
      code: 'BAD_MESSAGE',
      message: 'progressive or multi-scan JPEG: send baseline frames with one interleaved scan',
    };
  }
  return { ok: true, header };
}
