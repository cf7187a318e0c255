// Piscina task: one image job. The work itself runs in this worker's job process
// (workers/image-job-process.ts, started on the worker's first job, at a raised nice value);
// this thread holds the job's pool slot, relays its progress to the main thread through the
// ring, like every other worker output, and hands back the outputs (the compressed files, small
// next to the decode), which the main thread writes to disk, so a cancelled job can never leave
// a file behind. A cancel (DELETE, the deadline) kills the process, and the task ends once it
// has exited: the thread is not terminated, since a process whose parent thread is gone stays
// a zombie until the daemon exits (libuv reaps a child on the loop that started it).
import { type ChildProcess, fork } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { FramehubError } from '../src/errors.js';
import { ringWaitMs, workerRing } from '../src/pool/ring-claim.js';
import type {
  ImageJobTask,
  ImageJobTaskResult,
  JobProcessReply,
  JobProcessRequest,
  JobProgressRecord,
} from '../src/pool/tasks.js';
import { encode } from '../src/wire/records.js';

const writer = workerRing();
const waitMs = ringWaitMs();
const processEntry = fileURLToPath(new URL('./image-job-process.js', import.meta.url));

/** Progress steps smaller than this are not sent: the job store publishes at most every 5 % anyway. */
const PROGRESS_STEP = 0.05;

let jobProcess: ChildProcess | undefined;

/** This worker's job process, started again if the last one died (a crash fails only its job). */
function processFor(nice: number): ChildProcess {
  if (jobProcess?.connected) return jobProcess;
  const child = fork(processEntry, [String(nice)], {
    serialization: 'advanced',
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    execArgv: [],
  });
  child.once('exit', () => {
    if (jobProcess === child) jobProcess = undefined;
  });
  // A send or kill that fails between jobs would otherwise throw in this thread; a job's own
  // listener turns it into that job's failure.
  child.on('error', () => {});
  jobProcess = child;
  return child;
}

export default function imageJobTask(task: ImageJobTask): Promise<ImageJobTaskResult> {
  let sent = -1;
  const report = (progress: number) => {
    if (progress - sent < PROGRESS_STEP && progress < 1) return;
    sent = progress;
    const record: JobProgressRecord = { type: 'job_progress', job: task.job, progress };
    // A full ring drops a progress record; the next one, or the result, supersedes it.
    writer.write(encode(record), waitMs);
  };
  report(0);
  writeFileSync(task.inputPath, new Uint8Array(task.input));
  const child = processFor(task.nice);
  return new Promise((resolve, reject) => {
    const settle = (done: () => void) => {
      child.off('message', onReply).off('exit', onExit).off('error', onError);
      task.cancel.close();
      rmSync(task.inputPath, { force: true });
      done();
    };
    // Its exit settles the task: a killed job frees its slot once the process is gone.
    task.cancel.once('message', () => child.kill('SIGKILL'));
    const onReply = (reply: JobProcessReply) => {
      if ('progress' in reply) report(reply.progress);
      else if ('result' in reply) settle(() => resolve(reply.result));
      else settle(() => reject(new FramehubError(reply.error.code, reply.error.message, reply.error.status)));
    };
    const onExit = (code: number | null, signal: string | null) =>
      settle(() => reject(new Error(`the image job process exited (${signal ?? `code ${code}`})`)));
    const onError = (err: Error) => settle(() => reject(err));
    child.on('message', onReply).on('exit', onExit).on('error', onError);
    const request: JobProcessRequest = {
      inputPath: task.inputPath,
      options: task.options,
      maxPixels: task.maxPixels,
    };
    child.send(request);
  });
}
