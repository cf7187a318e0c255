import { BodyAbortedError, FramehubError } from '../errors.js';

/** A body this close to its end is read and dropped after an early answer; a longer one closes (as BodyReader does). */
const LINGER_BYTES = 64 * 1024;

/**
 * What ChunkStream uses of a uWS HttpResponse, which is one. Kept to these three calls so this
 * module stays free of uWS and of server/ (biome.json): the routes pass their `res`.
 */
export interface ChunkSource {
  onData(handler: (chunk: ArrayBuffer, isLast: boolean) => void): unknown;
  pause(): void;
  resume(): void;
}

/** 413: the body would take the upload past its Upload-Length. */
export const bodyPastLength = () => new FramehubError('TOO_LARGE', 'the body goes past Upload-Length', 413);

/**
 * A PATCH (or creation-with-upload POST) body, streamed to disk one chunk at a time. The socket
 * is paused from the start and after every chunk until it is written, so memory holds what one
 * socket read delivered (uWS reads at most 512 KiB), whatever the body's size, and a refused
 * request is never read. Construct it in the handler, before it returns (uWS hands chunks only
 * to a reader attached by then).
 *
 * @example
 *   const body = new ChunkStream(res, contentLength);
 *   res.onAborted(() => body.abort());
 *   await body.pipeTo((chunk) => writer.append(chunk), upload.length - upload.offset);
 */
export class ChunkStream {
  private readonly queue: Buffer[] = [];
  private received = 0;
  private ended = false;
  private aborted = false;
  /** Chunks from now on are ignored: an answer is on its way. */
  private dropped = false;
  private paused = true;
  private wake: (() => void) | undefined;

  constructor(
    private readonly source: ChunkSource,
    /** From Content-Length; undefined for a chunked body. */
    readonly declared: number | undefined,
  ) {
    source.onData((chunk, isLast) => this.onChunk(chunk, isLast));
    source.pause();
  }

  /**
   * Hands the body to `append` chunk by chunk, at most `room` bytes. Resolves at the body's end;
   * rejects 413 once it would pass `room` (what fits is appended, nothing beyond), and
   * BodyAbortedError when the client left (what had arrived is appended first).
   */
  async pipeTo(append: (chunk: Buffer) => Promise<void>, room: number): Promise<void> {
    let left = room;
    for (;;) {
      const chunk = this.queue.shift();
      if (chunk) {
        if (chunk.length > left) {
          this.dropped = true;
          this.queue.length = 0;
          if (left > 0) await append(chunk.subarray(0, left));
          throw bodyPastLength();
        }
        left -= chunk.length;
        await append(chunk);
      } else if (this.ended) {
        // A socket left paused would never read the next request on the connection.
        this.setPaused(false);
        return;
      } else if (this.aborted) throw new BodyAbortedError();
      else {
        this.setPaused(false);
        await new Promise<void>((resolve) => {
          this.wake = resolve;
        });
      }
    }
  }

  /** From onAborted: the response is gone, so the socket is never touched again. */
  abort(): void {
    this.aborted = true;
    this.wakeUp();
  }

  /**
   * Before an error answer: ignores the rest of the body. True when the answer must close the
   * connection, because more than LINGER_BYTES (or an unknown amount) is still to come.
   */
  dropUnread(): boolean {
    this.dropped = true;
    this.queue.length = 0;
    const unread = this.declared === undefined ? Number.POSITIVE_INFINITY : this.declared - this.received;
    if (!this.ended && !(unread <= LINGER_BYTES)) return true;
    // Resumed, or the rest of the body and the next request on the connection are never read.
    this.setPaused(false);
    return false;
  }

  private onChunk(chunk: ArrayBuffer, isLast: boolean): void {
    this.received += chunk.byteLength;
    if (isLast) this.ended = true;
    if (this.dropped) return;
    // uWS neuters the chunk when this callback returns, so it is copied.
    if (chunk.byteLength > 0) this.queue.push(Buffer.from(new Uint8Array(chunk)));
    if (!isLast) this.setPaused(true);
    this.wakeUp();
  }

  private setPaused(paused: boolean): void {
    if (this.aborted || this.paused === paused) return;
    this.paused = paused;
    if (paused) this.source.pause();
    else this.source.resume();
  }

  private wakeUp(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }
}
