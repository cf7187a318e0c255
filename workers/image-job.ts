// Piscina task: one image job (compress.ts) in a worker. Progress goes to the main thread
// through this thread's ring, like every other worker output; the outputs come back in the
// task's result (copied: they are the compressed files, small next to the decode) and the
// main thread writes them to disk, so a cancelled job can never leave a file behind.
import { createHash } from 'node:crypto';
import { compressImage } from '../src/image/compress.js';
import { ringWaitMs, workerRing } from '../src/pool/ring-claim.js';
import type { ImageJobTask, ImageJobTaskResult, JobProgressRecord } from '../src/pool/tasks.js';
import { encode } from '../src/wire/records.js';

const writer = workerRing();
const waitMs = ringWaitMs();

/** Progress steps smaller than this are not sent: the job store publishes at most every 5 % anyway. */
const PROGRESS_STEP = 0.05;

export default async function imageJobTask(task: ImageJobTask): Promise<ImageJobTaskResult> {
  let sent = -1;
  const report = (progress: number) => {
    if (progress - sent < PROGRESS_STEP && progress < 1) return;
    sent = progress;
    const record: JobProgressRecord = { type: 'job_progress', job: task.job, progress };
    // A full ring drops a progress record; the next one, or the result, supersedes it.
    writer.write(encode(record), waitMs);
  };
  report(0);
  const result = await compressImage(
    new Uint8Array(task.input),
    task.options,
    { maxPixels: task.maxPixels },
    report,
  );
  return {
    source: result.source,
    outputs: result.outputs.map((out) => ({
      ...out,
      etag: `"${createHash('sha256').update(out.data).digest('base64url').slice(0, 32)}"`,
    })),
    ...(result.placeholder !== undefined && { placeholder: result.placeholder }),
  };
}
