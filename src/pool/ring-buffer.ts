/**
 * The worker→main result ring: one SharedArrayBuffer, one RingWriter on a worker, one
 * RingReader on the main thread. Layout and doorbell protocol are described in ring-layout.ts.
 */
export { createRing, MAX_CAPACITY, RingCorruptError } from './ring-layout.js';
export { RingReader, type RingStats, startDraining } from './ring-reader.js';
export { DEFAULT_WRITE_TIMEOUT_MS, RingWriter } from './ring-writer.js';
