// @ts-check
/**
 * A streaming reader for `multipart/x-mixed-replace` (the MJPEG stream), fed the chunks of a
 * `fetch` body. Each part's bytes are copied once, straight into a buffer of its announced
 * `Content-Length`; only the few hundred header bytes are scanned byte by byte. DOM-free.
 *
 * framehub always sends `Content-Length` (README "MJPEG"), so a part without one is refused
 * rather than searched for its boundary: that keeps the reader small and its cost bounded.
 */

const MAX_HEAD_BYTES = 8 * 1024;
const MAX_PART_BYTES = 32 * 1024 * 1024;
const CR = 13;
const LF = 10;

export class MultipartError extends Error {}

/**
 * The boundary from a response's Content-Type.
 * @param {string | null} contentType
 * @example boundaryOf('multipart/x-mixed-replace; boundary=framehubframe') // 'framehubframe'
 */
export function boundaryOf(contentType) {
  const m = /^multipart\/x-mixed-replace\s*;.*\bboundary="?([^";\s]+)"?/i.exec(contentType ?? '');
  return m?.[1];
}

/**
 * @typedef {object} Part
 * @property {Map<string, string>} headers  lower-case names
 * @property {Uint8Array} body
 */

export class MultipartReader {
  /**
   * @param {string} boundary
   * @param {(part: Part) => void} onPart
   */
  constructor(boundary, onPart) {
    this.delimiter = `--${boundary}`;
    this.onPart = onPart;
    /** Header bytes of the part being read. */
    this.head = new Uint8Array(MAX_HEAD_BYTES);
    this.headLength = 0;
    /** @type {{ headers: Map<string, string>, body: Uint8Array, filled: number } | undefined} */
    this.part = undefined;
    this.ended = false;
  }

  /**
   * Feeds the next chunk; calls onPart for every part it completes. Throws MultipartError
   * on a stream that is not framed as framehub frames it; the reader is unusable afterwards.
   * @param {Uint8Array} chunk
   */
  push(chunk) {
    let i = 0;
    while (i < chunk.length && !this.ended) {
      const part = this.part;
      if (part) {
        const n = Math.min(part.body.length - part.filled, chunk.length - i);
        part.body.set(chunk.subarray(i, i + n), part.filled);
        part.filled += n;
        i += n;
        if (part.filled === part.body.length) {
          this.part = undefined;
          this.onPart({ headers: part.headers, body: part.body });
        }
        continue;
      }
      // Header bytes, up to and including the blank line. The CRLF that ends the previous
      // part's body lands here too and is skipped when the head is parsed.
      if (this.headLength === MAX_HEAD_BYTES) throw new MultipartError('part headers over 8 KiB');
      const b = chunk[i++] ?? 0;
      this.head[this.headLength++] = b;
      const h = this.head;
      const n = this.headLength;
      if (b === LF && n >= 4 && h[n - 2] === CR && h[n - 3] === LF && h[n - 4] === CR) this.startPart();
    }
  }

  startPart() {
    const text = String.fromCharCode(...this.head.subarray(0, this.headLength));
    this.headLength = 0;
    const lines = text.split('\r\n').filter((line) => line !== '');
    const first = lines.shift();
    if (first === undefined) return; // only blank lines so far: still before the delimiter
    if (first === `${this.delimiter}--`) {
      this.ended = true;
      return;
    }
    if (first !== this.delimiter)
      throw new MultipartError(`expected ${this.delimiter}, got ${first?.slice(0, 40)}`);
    /** @type {Map<string, string>} */
    const headers = new Map();
    for (const line of lines) {
      const colon = line.indexOf(':');
      if (colon <= 0) throw new MultipartError(`bad part header line: ${line.slice(0, 40)}`);
      headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
    }
    const length = Number(headers.get('content-length'));
    if (!Number.isSafeInteger(length) || length < 0 || length > MAX_PART_BYTES)
      throw new MultipartError('part without a usable Content-Length');
    if (length === 0) {
      this.onPart({ headers, body: new Uint8Array(0) });
      return;
    }
    this.part = { headers, body: new Uint8Array(length), filled: 0 };
  }
}
