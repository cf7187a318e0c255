/**
 * Wall-clock milliseconds with sub-millisecond precision. Publisher and viewers run in
 * different processes on one machine; performance.timeOrigin is each process's wall-clock
 * start, so `timeOrigin + now()` is comparable across them to well under a millisecond,
 * where Date.now() would quantise every latency to whole milliseconds.
 */
export function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Rejects after ms with a message naming what timed out; every wait in the harness is bounded. */
export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<T>((_, rej) => {
      timer = setTimeout(() => rej(new Error(`${what}: no answer in ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}
