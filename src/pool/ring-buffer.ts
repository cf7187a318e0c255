/**
 * The worker→main result ring: one SharedArrayBuffer, one RingWriter on a worker, one
 * RingReader on the main thread. Layout and doorbell protocol are described in ring-layout.ts.
 */
import { RingCorruptError } from '../errors.js';
import type { RingReader } from './ring-reader.js';

export { createRing, MAX_CAPACITY } from './ring-layout.js';
export { RingReader, type RingStats } from './ring-reader.js';
export { DEFAULT_WRITE_TIMEOUT_MS, RingWriter } from './ring-writer.js';

/**
 * Drains a ring for as long as it runs: waitForData → drain → repeat. An onRecord error is
 * passed to onError and draining goes on. Between batches it yields to the event loop
 * (setImmediate) when more data is already waiting, so a fast writer cannot starve I/O. A
 * pending wait does not keep the process alive.
 *
 * @example
 *   const loop = startDraining(reader, (rec) => hub.publish(packr.unpack(rec)), (err) => log.error({ err }));
 *   loop.stop();
 */
export function startDraining(
  reader: RingReader,
  onRecord: (record: Uint8Array) => void,
  onError: (error: unknown) => void = reportUnhandled,
  batchRecords = 4096,
): { stop(): void } {
  let stopped = false;
  const run = async () => {
    while (!stopped) {
      if (reader.hasData()) await yieldToEventLoop();
      else await reader.waitForData();
      if (stopped) return;
      try {
        reader.drain(onRecord, batchRecords);
      } catch (error) {
        onError(error);
        // A corrupt ring would fail the same way on every retry: stop instead of spinning.
        if (error instanceof RingCorruptError) return;
      }
    }
  };
  run().catch(onError);
  return {
    stop() {
      stopped = true;
      reader.interrupt();
    },
  };
}

function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

function reportUnhandled(error: unknown): void {
  process.emitWarning(error instanceof Error ? error : String(error), 'RingRecordHandlerWarning');
}
