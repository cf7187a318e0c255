// The worker's side of its job process (workers/job-process.ts): started on the worker's first
// job task and kept for the next ones, started again after it dies. The worker thread is never
// terminated for a job (see WorkerPool.runJob), so it is always here to reap the process.
import { type ChildProcess, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { FramehubError } from '../src/errors.js';
import type { JobProcessFields, JobProcessReply, JobProcessRequest } from '../src/pool/tasks.js';

const entry = fileURLToPath(new URL('./job-process.js', import.meta.url));

let current: ChildProcess | undefined;

/** A live process, or a new one: a failed spawn (EAGAIN) emits only 'error', never 'exit'. */
function jobProcess(nice: number): ChildProcess {
  if (current && alive(current)) return current;
  const child = fork(entry, [String(nice)], {
    serialization: 'advanced',
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    execArgv: [],
  });
  const forget = () => {
    if (current === child) current = undefined;
  };
  child.once('exit', forget);
  // A failed spawn or send between jobs; a job's own listener turns it into that job's failure.
  child.on('error', () => {
    forget();
    child.kill('SIGKILL');
  });
  current = child;
  return child;
}

const alive = (child: ChildProcess) =>
  child.pid !== undefined && child.exitCode === null && child.signalCode === null && child.connected;

/**
 * Runs one request in this worker's job process. Resolves with its result, rejects with its
 * FramehubError (or an Error when the process died). A message on `task.cancel` kills the
 * process, and the promise settles only once it has exited: the job's slot is free then.
 */
export function inJobProcess<R>(
  request: JobProcessRequest,
  task: JobProcessFields,
  onProgress: (fraction: number) => void = () => {},
): Promise<R> {
  const child = jobProcess(task.nice);
  return new Promise<R>((resolve, reject) => {
    const settle = (done: () => void) => {
      child.off('message', onReply).off('exit', onExit).off('error', onError);
      task.cancel.close();
      done();
    };
    const onReply = (reply: JobProcessReply) => {
      if ('progress' in reply) onProgress(reply.progress);
      else if ('result' in reply) settle(() => resolve(reply.result as R));
      else settle(() => reject(new FramehubError(reply.error.code, reply.error.message, reply.error.status)));
    };
    const onExit = (code: number | null, signal: string | null) =>
      settle(() => reject(new Error(`the job process exited (${signal ?? `code ${code}`})`)));
    const onError = (err: Error) => settle(() => reject(err));
    child.on('message', onReply).on('exit', onExit).on('error', onError);
    // A cancel that comes with the result already on its way still kills: only the exit settles,
    // and no later job gets the dying process.
    task.cancel.once('message', () => {
      child.off('message', onReply);
      if (current === child) current = undefined;
      child.kill('SIGKILL');
    });
    child.send(request);
  });
}
