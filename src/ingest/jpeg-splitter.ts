const SOI = Buffer.from([0xff, 0xd8]);
const EOI = Buffer.from([0xff, 0xd9]);
/** The 0xFF that began a start marker split across two reads, when the frame starts in the next. */
const SOI_HEAD = Buffer.from([0xff]);

/** The largest frame a camera may send; anything bigger is discarded. */
export const MAX_FRAME_BYTES = 16 * 1024 * 1024;

export interface JpegSplitterOptions {
  /** Frames larger than this (SOI to EOI) are discarded. Default MAX_FRAME_BYTES. */
  maxFrameBytes?: number;
  /** Called once per discarded oversized frame, with the bytes thrown away for it so far. */
  onOversize?: (bytes: number) => void;
}

/**
 * Splits an MJPEG byte stream (concatenated JPEGs, as ffmpeg's `-f mjpeg` writes them)
 * into whole JPEG frames. Inside entropy-coded data 0xFF is stuffed as FF 00, so FF D9 only
 * appears as the end-of-image marker; ffmpeg writes no embedded thumbnails that would nest one.
 *
 * The reads of a frame in progress are kept as a list and joined once, when its end marker
 * arrives, and each read is scanned once, so the cost is linear in the frame size (joining on
 * every read was quadratic: 455 ms per 16 MiB frame). A marker split across two reads is
 * caught by remembering whether the last read ended in 0xFF. A frame that grows past
 * `maxFrameBytes` is discarded and counted; the splitter then hunts for the next start marker.
 *
 * @example
 *   const splitter = new JpegSplitter((jpeg) => submit(jpeg), { onOversize: () => dropped++ });
 *   child.stdout.on('data', (chunk) => splitter.push(chunk));
 */
export class JpegSplitter {
  /** Reads of the frame in progress, the first starting at its SOI; empty while hunting. */
  private parts: Buffer[] = [];
  private partsBytes = 0;
  private inFrame = false;
  /** The last read ended in 0xFF: maybe the first half of a marker. */
  private lastWasFF = false;
  private readonly maxFrameBytes: number;
  private readonly onOversize: ((bytes: number) => void) | undefined;
  /** Bytes thrown away: junk before a start marker, or frames over maxFrameBytes. */
  discardedBytes = 0;
  /** Frames thrown away for being over maxFrameBytes. */
  discardedFrames = 0;

  constructor(
    private readonly onFrame: (jpeg: Buffer) => void,
    opts: JpegSplitterOptions = {},
  ) {
    this.maxFrameBytes = opts.maxFrameBytes ?? MAX_FRAME_BYTES;
    this.onOversize = opts.onOversize;
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    const carriedFF = this.lastWasFF;
    this.lastWasFF = chunk[chunk.length - 1] === 0xff;
    let pos = 0;
    /** Where the frame in progress starts in this chunk (0 when it began in an earlier read). */
    let frameFrom = 0;
    if (carriedFF && this.inFrame && chunk[0] === 0xd9) {
      this.finish(chunk.subarray(0, 1));
      pos = 1;
    } else if (carriedFF && !this.inFrame) {
      if (chunk[0] === 0xd8) {
        this.inFrame = true;
        this.keep(SOI_HEAD);
        pos = 1;
      } else {
        this.discardedBytes++;
      }
    }
    for (;;) {
      if (!this.inFrame) {
        const start = chunk.indexOf(SOI, pos);
        if (start < 0) {
          // A trailing 0xFF is counted by the next read, once it is known not to start a frame.
          this.discardedBytes += chunk.length - pos - (this.lastWasFF ? 1 : 0);
          return;
        }
        this.discardedBytes += start - pos;
        this.inFrame = true;
        frameFrom = start;
        pos = start + 2;
      }
      const end = chunk.indexOf(EOI, pos);
      if (end < 0) break;
      this.finish(chunk.subarray(frameFrom, end + 2));
      pos = end + 2;
    }
    this.keep(chunk.subarray(frameFrom));
  }

  /** Adds bytes to the frame in progress, discarding it once it is over the limit. */
  private keep(part: Buffer): void {
    this.parts.push(part);
    this.partsBytes += part.length;
    if (this.partsBytes > this.maxFrameBytes) {
      this.discard(this.partsBytes);
      // The discarded frame's last byte must not pair with the next read's first.
      this.lastWasFF = false;
    }
  }

  /** Ends the frame in progress with its last bytes (up to and including EOI). */
  private finish(last: Buffer): void {
    const bytes = this.partsBytes + last.length;
    if (bytes > this.maxFrameBytes) {
      this.discard(bytes);
      return;
    }
    const frame = this.parts.length === 0 ? last : Buffer.concat([...this.parts, last], bytes);
    this.reset();
    this.onFrame(frame);
  }

  private discard(bytes: number): void {
    this.reset();
    this.discardedBytes += bytes;
    this.discardedFrames++;
    this.onOversize?.(bytes);
  }

  private reset(): void {
    this.parts = [];
    this.partsBytes = 0;
    this.inFrame = false;
  }
}
