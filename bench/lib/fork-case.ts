import { fork } from 'node:child_process';

export interface ForkCaseOptions {
  /** Killed (and the case failed) past this. */
  timeoutMs: number;
  /** Node flags for the case's process (--expose-gc, heap sizes). */
  execArgv?: string[];
  env?: NodeJS.ProcessEnv;
}

/**
 * Runs one case of a micro-bench in a fresh Node process (`script spec-as-JSON`), so no case
 * inherits another's heap, JIT state or thread pool, and resolves with the one result the
 * case sends back with `process.send`.
 *
 * @example
 *   const r = await forkCase<CaseResult>(caseScript, { size: 64 }, { timeoutMs: 60_000 });
 */
export function forkCase<R>(script: string, spec: unknown, opts: ForkCaseOptions): Promise<R> {
  return new Promise((resolve, reject) => {
    const child = fork(script, [JSON.stringify(spec)], {
      execArgv: opts.execArgv ?? [],
      env: opts.env ?? process.env,
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    let result: R | undefined;
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs);
    child.on('message', (m) => {
      result = m as R;
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (result) resolve(result);
      else reject(new Error(`case ${JSON.stringify(spec)} exited with ${signal ?? code} and no result`));
    });
  });
}
