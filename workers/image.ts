import { performance } from 'node:perf_hooks';
import { workerData } from 'node:worker_threads';
import { type FrameVariant, makeVariants } from '../src/image/variants.js';
import { encode, type FrameRecord } from '../src/pool/records.js';
import { claimRing, type PoolWorkerData } from '../src/pool/ring-claim.js';

/** A camera frame moved (not copied) into the worker. */
export interface ImageTask {
  camera: string;
  seq: number;
  ts: number;
  width: number;
  height: number;
  jpeg: ArrayBuffer;
  variants: FrameVariant[];
}

export interface ImageTaskResult {
  written: number;
  dropped: number;
  bytesOut: number;
  ms: number;
}

const data = workerData as PoolWorkerData;
const { writer } = claimRing(data);

/** Resizes one frame into its variants and writes each, as a ready-to-send frame record, into this worker's ring. */
export default async function imageTask(task: ImageTask): Promise<ImageTaskResult> {
  const started = performance.now();
  const source = new Uint8Array(task.jpeg);
  const images = await makeVariants(source, task.width, task.height, task.variants);
  let written = 0;
  let dropped = 0;
  let bytesOut = 0;
  for (const img of images) {
    const record: FrameRecord = {
      type: 'frame',
      topic: `cam/${task.camera}/${img.variant}`,
      seq: task.seq,
      ts: task.ts,
      mime: 'image/jpeg',
      width: img.width,
      height: img.height,
      data: img.data,
    };
    if (writer.write(encode(record), data.ringWaitMs)) written++;
    else dropped++;
    if (img.data !== source) bytesOut += img.data.byteLength;
  }
  return { written, dropped, bytesOut, ms: performance.now() - started };
}
