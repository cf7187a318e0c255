import { RecordTooLargeError } from '../errors.js';
import { align8, HEADER_BYTES, openRing, RECORD_HEADER_BYTES, TAG, W, WRAP } from './ring-layout.js';

/** Default time write() blocks on a full ring before it drops the record. */
export const DEFAULT_WRITE_TIMEOUT_MS = 1000;

/**
 * The producer side of a ring; one per ring, on a worker thread (write() may block it with
 * Atomics.wait, which the main thread is not allowed to do). Layout and protocol: ring-layout.ts.
 *
 * @example
 *   const writer = new RingWriter(workerData.ring);
 *   if (!writer.write(packr.pack(result), 20)) dropped++;
 */
export class RingWriter {
  /** The largest payload write() accepts; larger ones throw RecordTooLargeError. */
  readonly maxRecordBytes: number;
  private readonly header: Int32Array;
  private readonly capacity: number;
  private readonly wrapAt: number;
  private readonly bytes: Uint8Array;
  private readonly words: Int32Array;
  /** Our own copy of TAIL: only this writer moves it. */
  private tail: number;
  /** The last HEAD we loaded; re-read only when it does not show enough room. */
  private head: number;
  private written: number;
  /** Aligned private staging for payloads that are not 8-aligned (see write()). */
  private scratch = new Uint8Array(0);

  constructor(sab: SharedArrayBuffer) {
    const { header, capacity } = openRing(sab);
    this.header = header;
    this.capacity = capacity;
    this.wrapAt = 2 * capacity;
    this.maxRecordBytes = capacity - RECORD_HEADER_BYTES;
    this.bytes = new Uint8Array(sab, HEADER_BYTES, capacity);
    this.words = new Int32Array(sab, HEADER_BYTES, capacity >> 2);
    // A replacement worker may take over a ring a dead one wrote to: continue from its state.
    this.tail = Atomics.load(header, W.TAIL);
    this.head = Atomics.load(header, W.HEAD);
    this.written = Atomics.load(header, W.WRITTEN);
  }

  /**
   * Appends one record. When the ring is full, blocks this thread (Atomics.wait) for up to
   * `timeoutMs` for the reader to free space, then gives up: returns false and counts a
   * drop. Both the wait (FULL_EVENTS) and the drop (DROPS) are counted in shared memory.
   * Throws RecordTooLargeError if the payload is larger than maxRecordBytes.
   */
  write(payload: Uint8Array, timeoutMs = DEFAULT_WRITE_TIMEOUT_MS): boolean {
    const length = payload.length;
    const size = RECORD_HEADER_BYTES + align8(length);
    if (size > this.capacity) throw new RecordTooLargeError(length, this.maxRecordBytes);

    let offset = this.offsetOf(this.tail);
    const tailRoom = this.capacity - offset;
    let deadline = -1;
    if (size > tailRoom) {
      // Too short a tail: mark it as skipped, publish that, and start at offset 0. Publishing
      // the marker on its own lets the reader free the tail even if the record must wait.
      if (!this.hasRoom(tailRoom)) {
        deadline = performance.now() + timeoutMs;
        if (!this.waitForRoom(tailRoom, deadline, true)) return false;
      }
      this.words[offset >> 2] = WRAP;
      this.words[(offset >> 2) + 1] = WRAP ^ TAG;
      this.publish(tailRoom);
      offset = 0;
    }
    if (!this.hasRoom(size)) {
      const first = deadline < 0;
      if (first) deadline = performance.now() + timeoutMs;
      if (!this.waitForRoom(size, deadline, first)) return false;
    }

    const w = offset >> 2;
    this.words[w] = length;
    this.words[w + 1] = length ^ TAG;
    if ((payload.byteOffset & 7) === 0 || length < 256) {
      this.bytes.set(payload, offset + RECORD_HEADER_BYTES);
    } else {
      // A misaligned source makes V8 copy into shared memory byte by byte; staging it in
      // aligned private memory (a plain memmove) and then copying word by word is faster.
      if (this.scratch.length < length) this.scratch = new Uint8Array(align8(length));
      this.scratch.set(payload);
      this.bytes.set(this.scratch.subarray(0, length), offset + RECORD_HEADER_BYTES);
    }
    this.written = (this.written + 1) | 0;
    Atomics.store(this.header, W.WRITTEN, this.written);
    this.publish(size);
    return true;
  }

  private offsetOf(position: number): number {
    return position >= this.capacity ? position - this.capacity : position;
  }

  private free(): number {
    const used = this.tail - this.head;
    return this.capacity - (used < 0 ? used + this.wrapAt : used);
  }

  /** True when `bytes` fit, reloading HEAD only if the cached one says they do not. */
  private hasRoom(bytes: number): boolean {
    if (this.free() >= bytes) return true;
    this.head = Atomics.load(this.header, W.HEAD);
    return this.free() >= bytes;
  }

  /** Moves TAIL past `bytes` just written and rings the reader's doorbell if it sleeps. */
  private publish(bytes: number): void {
    const tail = this.tail + bytes;
    this.tail = tail >= this.wrapAt ? tail - this.wrapAt : tail;
    const h = this.header;
    Atomics.store(h, W.TAIL, this.tail);
    if (Atomics.load(h, W.READER_WAITING) !== 0 && Atomics.exchange(h, W.READER_WAITING, 0) !== 0) {
      Atomics.add(h, W.DOORBELL, 1);
      Atomics.notify(h, W.DOORBELL);
    }
  }

  /**
   * Sleeps until `bytes` are free or `deadline` (performance.now() ms) passes. Counts one
   * full event per write() (`countFull`) and one drop when it gives up.
   */
  private waitForRoom(bytes: number, deadline: number, countFull: boolean): boolean {
    const h = this.header;
    if (countFull) Atomics.add(h, W.FULL_EVENTS, 1);
    for (;;) {
      const seen = Atomics.load(h, W.SPACE_BELL);
      Atomics.store(h, W.WANT, bytes);
      Atomics.store(h, W.WRITER_WAITING, 1);
      this.head = Atomics.load(h, W.HEAD);
      if (this.free() >= bytes) {
        Atomics.store(h, W.WRITER_WAITING, 0);
        return true;
      }
      const remaining = deadline - performance.now();
      if (!(remaining > 0)) {
        Atomics.store(h, W.WRITER_WAITING, 0);
        Atomics.add(h, W.DROPS, 1);
        return false;
      }
      Atomics.wait(h, W.SPACE_BELL, seen, remaining);
    }
  }
}
