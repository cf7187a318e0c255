// Piscina task: one image job. The work itself runs in this worker's job process
// (workers/job-process.ts, at a raised nice value); this thread holds the job's pool slot,
// writes the input where the process reads it, relays its progress to the main thread through
// the ring, like every other worker output, and hands back the outputs (the compressed files,
// small next to the decode), which the main thread writes to disk, so a cancelled job can
// never leave a file behind.
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { ringWaitMs, workerRing } from '../src/pool/ring-claim.js';
import type {
  ImageJobTask,
  ImageJobTaskResult,
  JobProcessFields,
  JobProgressRecord,
} from '../src/pool/tasks.js';
import { encode } from '../src/wire/records.js';
import { inJobProcess } from './job-process-client.js';

const writer = workerRing();
const waitMs = ringWaitMs();

/** Progress steps smaller than this are not sent: the job store publishes at most every 5 % anyway. */
const PROGRESS_STEP = 0.05;

export default async function imageJobTask(
  task: ImageJobTask & JobProcessFields,
): Promise<ImageJobTaskResult> {
  let sent = -1;
  const report = (progress: number) => {
    if (progress - sent < PROGRESS_STEP && progress < 1) return;
    sent = progress;
    const record: JobProgressRecord = { type: 'job_progress', job: task.job, progress };
    // A full ring drops a progress record; the next one, or the result, supersedes it.
    writer.write(encode(record), waitMs);
  };
  report(0);
  try {
    // The work directory may have been aged out of the OS temp dir since the daemon started.
    mkdirSync(dirname(task.inputPath), { recursive: true });
    writeFileSync(task.inputPath, new Uint8Array(task.input));
    const { inputPath, options, maxPixels } = task;
    return await inJobProcess<ImageJobTaskResult>(
      { kind: 'image', inputPath, options, maxPixels },
      task,
      report,
    );
  } finally {
    // The process removes the input once read; this covers a process that never got that far.
    try {
      rmSync(task.inputPath, { force: true });
    } catch {
      // Left for the next start, which empties the work directory.
    }
  }
}
