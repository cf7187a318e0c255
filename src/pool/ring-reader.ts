import { RingCorruptError } from '../errors.js';
import { align8, HEADER_BYTES, openRing, RECORD_HEADER_BYTES, TAG, W, WRAP } from './ring-layout.js';

/** Records up to this size are copied into a shared slab instead of a buffer each. */
const SMALL_RECORD_BYTES = 1024;
const SLAB_BYTES = 64 * 1024;
const EMPTY = new Uint8Array(0);
const RESOLVED = Promise.resolve();

type WaitAsyncResult =
  | { async: false; value: 'not-equal' | 'timed-out' }
  | { async: true; value: Promise<string> };
// ES2024, present since Node 16; the ES2023 lib we compile against does not declare it.
const waitAsync = (Atomics as unknown as { waitAsync(a: Int32Array, i: number, v: number): WaitAsyncResult })
  .waitAsync;

/** Ring occupancy and lifetime counters, as exact (widened) numbers. */
export interface RingStats {
  capacity: number;
  usedBytes: number;
  written: number;
  read: number;
  fullEvents: number;
  drops: number;
}

/**
 * The consumer side of a ring; one per ring, on the main thread. Records come out as
 * private copies, so they stay valid after the writer reuses the space.
 * Layout and protocol: ring-layout.ts.
 *
 * @example
 *   const reader = new RingReader(sab);
 *   await reader.waitForData();
 *   reader.drain((rec) => handle(packr.unpack(rec)));
 */
export class RingReader {
  readonly capacity: number;
  private readonly header: Int32Array;
  private readonly wrapAt: number;
  private readonly bytes: Uint8Array;
  private readonly words: Int32Array;
  /** Our own copy of HEAD: only this reader moves it. */
  private head: number;
  private readonly publishEvery: number;
  private read = 0;
  private slab = EMPTY;
  private slabUsed = 0;
  // Widened copies of the uint32 shared counters, and the raw values they were taken from.
  private fullEvents = 0;
  private fullRaw: number;
  private drops = 0;
  private dropsRaw: number;

  constructor(sab: SharedArrayBuffer) {
    const { header, capacity } = openRing(sab);
    this.header = header;
    this.capacity = capacity;
    this.wrapAt = 2 * capacity;
    this.bytes = new Uint8Array(sab, HEADER_BYTES, capacity);
    this.words = new Int32Array(sab, HEADER_BYTES, capacity >> 2);
    this.head = Atomics.load(header, W.HEAD);
    this.publishEvery = capacity >> 3;
    this.read = Atomics.load(header, W.READ) >>> 0;
    this.fullRaw = Atomics.load(header, W.FULL_EVENTS);
    this.dropsRaw = Atomics.load(header, W.DROPS);
    this.fullEvents = this.fullRaw >>> 0;
    this.drops = this.dropsRaw >>> 0;
  }

  /** True when at least one record (or a wrap marker) is waiting. */
  hasData(): boolean {
    return this.head !== Atomics.load(this.header, W.TAIL);
  }

  /**
   * Copies every record published before the call, up to `maxRecords`, into private memory
   * and calls onRecord for each, in order. Returns how many. A record handed to onRecord has
   * already been consumed, so when onRecord throws, the error propagates and the next
   * drain() continues with the record after it.
   *
   * Records of up to 1 KB are views into a shared 64 KB slab (8-aligned, never the SAB);
   * copy one before transferring its `.buffer` elsewhere. Larger records own their buffer.
   */
  drain(onRecord: (record: Uint8Array) => void, maxRecords = Number.POSITIVE_INFINITY): number {
    const tail = Atomics.load(this.header, W.TAIL);
    const capacity = this.capacity;
    let head = this.head;
    let unpublished = 0;
    let count = 0;
    try {
      while (head !== tail && count < maxRecords) {
        const offset = head >= capacity ? head - capacity : head;
        const w = offset >> 2;
        const length = this.words[w]!;
        if ((length ^ TAG) !== this.words[w + 1]) throw new RingCorruptError(offset, 'bad header tag');
        let size: number;
        let record: Uint8Array | undefined;
        if (length === WRAP) {
          size = capacity - offset;
        } else {
          size = RECORD_HEADER_BYTES + align8(length);
          if (length < 0 || size > capacity - offset) throw new RingCorruptError(offset, `length ${length}`);
          record = this.copyOut(offset + RECORD_HEADER_BYTES, length);
        }
        head += size;
        if (head >= this.wrapAt) head -= this.wrapAt;
        this.head = head;
        // The space is free as soon as the bytes are copied, before the callback runs. HEAD is
        // published every eighth of the ring rather than per record: each SC store costs.
        unpublished += size;
        if (unpublished >= this.publishEvery) {
          unpublished = 0;
          this.publishHead(false);
        }
        if (record !== undefined) {
          count++;
          this.read++;
          onRecord(record);
        }
      }
    } finally {
      this.publishHead(true);
    }
    return count;
  }

  /**
   * Resolves when at least one record is available: at once if one already is, else when the
   * writer rings the doorbell (Atomics.waitAsync; no polling, no timers) or interrupt() is
   * called. May resolve with nothing to read; callers loop.
   */
  waitForData(): Promise<void> {
    const h = this.header;
    if (this.head !== Atomics.load(h, W.TAIL)) return RESOLVED;
    const seen = Atomics.load(h, W.DOORBELL);
    Atomics.store(h, W.READER_WAITING, 1);
    if (this.head !== Atomics.load(h, W.TAIL)) {
      Atomics.store(h, W.READER_WAITING, 0);
      return RESOLVED;
    }
    const result = waitAsync(h, W.DOORBELL, seen);
    return result.async ? result.value.then(noop) : RESOLVED;
  }

  /** Wakes a pending waitForData() without data, e.g. to stop a drain loop. */
  interrupt(): void {
    Atomics.store(this.header, W.READER_WAITING, 0);
    Atomics.add(this.header, W.DOORBELL, 1);
    Atomics.notify(this.header, W.DOORBELL);
  }

  /**
   * Occupancy and counters. The shared counters are uint32 and wrap; this widens them by
   * accumulating the difference since the last look (here and in every drain()), which is
   * exact as long as fewer than 2^32 events happen between two looks.
   */
  stats(): RingStats {
    const h = this.header;
    const full = Atomics.load(h, W.FULL_EVENTS);
    this.fullEvents += (full - this.fullRaw) >>> 0;
    this.fullRaw = full;
    const drops = Atomics.load(h, W.DROPS);
    this.drops += (drops - this.dropsRaw) >>> 0;
    this.dropsRaw = drops;
    // Records in flight are fewer than 2^32, so the uint32 difference is exact.
    const written = this.read + ((Atomics.load(h, W.WRITTEN) - this.read) >>> 0);
    const used = Atomics.load(h, W.TAIL) - this.head;
    return {
      capacity: this.capacity,
      usedBytes: used < 0 ? used + this.wrapAt : used,
      written,
      read: this.read,
      fullEvents: this.fullEvents,
      drops: this.drops,
    };
  }

  /** Copies a payload out of shared memory into 8-aligned private memory. */
  private copyOut(start: number, length: number): Uint8Array {
    if (length === 0) return EMPTY;
    const source = this.bytes.subarray(start, start + length);
    if (length > SMALL_RECORD_BYTES) {
      // A buffer of its own, at offset 0 (never a Buffer.allocUnsafe pool slice, which is not
      // 8-aligned). Skipping the zero-fill with allocUnsafeSlow measured no faster here.
      const out = new Uint8Array(length);
      out.set(source);
      return out;
    }
    if (this.slabUsed + length > this.slab.length) {
      this.slab = new Uint8Array(SLAB_BYTES);
      this.slabUsed = 0;
    }
    const at = this.slabUsed;
    this.slab.set(source, at);
    this.slabUsed = at + align8(length);
    return this.slab.subarray(at, at + length);
  }

  /** Stores HEAD (and READ) and wakes the writer if it is blocked for space. */
  private publishHead(endOfDrain: boolean): void {
    const h = this.header;
    Atomics.store(h, W.HEAD, this.head);
    if (endOfDrain) Atomics.store(h, W.READ, this.read | 0);
    if (Atomics.load(h, W.WRITER_WAITING) !== 0) this.wakeWriter(endOfDrain);
  }

  /**
   * Wakes a writer blocked on a full ring. Mid-drain (`force` false) only once a quarter of
   * the ring, or what it asked for if more, is free, so it writes a batch rather than one
   * record per wake-up; at the end of a drain always.
   */
  private wakeWriter(force: boolean): void {
    const h = this.header;
    if (!force) {
      let used = Atomics.load(h, W.TAIL) - this.head;
      if (used < 0) used += this.wrapAt;
      if (this.capacity - used < Math.max(Atomics.load(h, W.WANT), this.capacity >> 2)) return;
    }
    if (Atomics.exchange(h, W.WRITER_WAITING, 0) !== 0) {
      Atomics.add(h, W.SPACE_BELL, 1);
      Atomics.notify(h, W.SPACE_BELL);
    }
  }
}

function noop(): void {}
