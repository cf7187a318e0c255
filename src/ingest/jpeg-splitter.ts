const SOI = Buffer.from([0xff, 0xd8]);
const EOI = Buffer.from([0xff, 0xd9]);

/**
 * Splits an MJPEG byte stream (concatenated JPEGs, as ffmpeg's `-f mjpeg` writes them)
 * into whole JPEG frames. Inside entropy-coded data 0xFF is stuffed as FF 00, so FF D9 only
 * appears as the end-of-image marker; ffmpeg writes no embedded thumbnails that would nest one.
 *
 * A partial frame is kept as one pending buffer, and the end-marker search resumes where the
 * last one stopped, so a frame arriving in many pipe reads is scanned once. A stream that never
 * ends a frame is cut at `maxFrameBytes` and counted as discarded rather than growing memory.
 */
export class JpegSplitter {
  private pending: Buffer | undefined;
  /** Offset in `pending` from which the end marker has not been searched yet. */
  private scanFrom = 0;
  /** Bytes thrown away: junk before a start marker, or frames over maxFrameBytes. */
  discardedBytes = 0;

  constructor(
    private readonly onFrame: (jpeg: Buffer) => void,
    private readonly maxFrameBytes = 16 * 1024 * 1024,
  ) {}

  push(chunk: Buffer): void {
    let data = this.pending ? Buffer.concat([this.pending, chunk]) : chunk;
    let scanFrom = this.pending ? this.scanFrom : 0;
    this.pending = undefined;
    for (;;) {
      if (scanFrom === 0) {
        const start = data.indexOf(SOI);
        if (start < 0) {
          // A trailing 0xFF may be the first half of a start marker split across reads.
          const carry = data[data.length - 1] === 0xff ? 1 : 0;
          this.discardedBytes += data.length - carry;
          if (carry) this.hold(data.subarray(data.length - 1), 0);
          return;
        }
        this.discardedBytes += start;
        data = data.subarray(start);
        scanFrom = 2;
      }
      const end = data.indexOf(EOI, scanFrom);
      if (end < 0) {
        if (data.length > this.maxFrameBytes) this.discardedBytes += data.length;
        else this.hold(data, Math.max(2, data.length - 1));
        return;
      }
      this.onFrame(data.subarray(0, end + 2));
      data = data.subarray(end + 2);
      scanFrom = 0;
    }
  }

  private hold(data: Buffer, scanFrom: number): void {
    this.pending = data;
    this.scanFrom = scanFrom;
  }
}
