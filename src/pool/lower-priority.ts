import { readdirSync } from 'node:fs';
import os from 'node:os';

/**
 * Raises the nice value of every thread of this process by `increment` (to at most 19), so
 * that the OS scheduler gives the CPU to everything else first (live frames, the main thread)
 * and to this process what is left. Linux keeps a nice value per thread, and setpriority on
 * the process id moves the calling thread alone; a thread started later takes the value of
 * the thread that starts it, so call this before loading what starts threads (sharp,
 * libvips) and every thread after inherits it. Elsewhere setpriority applies to the whole
 * process. Raising one's own nice value needs no privilege. Returns the value set, and the
 * first error other than a thread that exited meanwhile.
 *
 * @example
 *   lowerOwnPriority(10); // then: const { compressImage } = await import('./compress.js')
 */
export function lowerOwnPriority(increment: number): { nice: number; error?: string } {
  const nice = Math.min(19, os.getPriority() + increment);
  let threads: string[];
  try {
    threads = readdirSync('/proc/self/task');
  } catch {
    return attempt(() => os.setPriority(nice), nice);
  }
  for (const tid of threads) {
    const outcome = attempt(() => os.setPriority(Number(tid), nice), nice);
    if (outcome.error) return outcome;
  }
  return { nice };
}

function attempt(set: () => void, nice: number): { nice: number; error?: string } {
  try {
    set();
    return { nice };
  } catch (err) {
    // ESRCH: the thread exited between the listing and the call.
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return { nice };
    return { nice, error: `could not lower the job process's priority: ${(err as Error).message}` };
  }
}
