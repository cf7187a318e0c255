import { readdirSync } from 'node:fs';
import os from 'node:os';

/**
 * Raises the nice value of every thread of this process to `nice`, so that the OS scheduler
 * gives the CPU to everything else first (live frames, the main thread) and to this process
 * what is left. Linux keeps a nice value per thread, and setpriority on the process id moves
 * the calling thread alone; a thread started later takes the value of the thread that starts
 * it, so call this before loading what starts threads (sharp, libvips) and every thread after
 * inherits it. Elsewhere setpriority applies to the whole process. Raising one's own nice value
 * needs no privilege; a thread that exits meanwhile is skipped.
 *
 * @example
 *   lowerOwnPriority(10); // then: const { compressImage } = await import('./compress.js')
 */
export function lowerOwnPriority(nice: number): void {
  let threads: string[];
  try {
    threads = readdirSync('/proc/self/task');
  } catch {
    os.setPriority(nice);
    return;
  }
  for (const tid of threads) {
    try {
      os.setPriority(Number(tid), nice);
    } catch {
      // The thread exited between the listing and the call.
    }
  }
}
