import type { CameraConfig } from '../config/schema.js';
import { FRAME_VARIANTS, type FrameVariant } from '../image/variants.js';
import type { WorkerPool } from '../pool/worker-pool.js';

/**
 * Where camera frames enter the pipeline, from an ffmpeg supervisor or a WS publisher.
 * Numbers frames per camera (the seq every variant topic carries) and asks the pool only for
 * the variants someone is watching, plus every variant about once a second so snapshots and
 * new subscribers always find a recent frame.
 */
export class FrameIngest {
  private readonly seqs = new Map<string, number>();

  constructor(
    private readonly pool: WorkerPool,
    private readonly hasDemand: (topic: string) => boolean,
  ) {}

  submit(cam: CameraConfig, jpeg: Uint8Array, ts: number): boolean {
    const seq = (this.seqs.get(cam.id) ?? 0) + 1;
    this.seqs.set(cam.id, seq);
    const refresh = seq % cam.fps === 1 || cam.fps === 1;
    const variants = FRAME_VARIANTS.filter(
      (v: FrameVariant) => v === 'raw' || refresh || this.hasDemand(`cam/${cam.id}/${v}`),
    );
    // A private ArrayBuffer the worker can take by transfer (the pipe's Buffer is pooled).
    const owned = new ArrayBuffer(jpeg.byteLength);
    new Uint8Array(owned).set(jpeg);
    // Push cameras send frames of any size: width 0 makes the worker read it from the JPEG.
    const [width, height] = cam.source === 'push' ? [0, 0] : [cam.width, cam.height];
    return this.pool.submitFrame({ camera: cam.id, seq, ts, width, height, jpeg: owned, variants });
  }
}
