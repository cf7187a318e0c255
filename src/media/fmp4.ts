/**
 * Splits the fragmented MP4 that ffmpeg writes to a pipe (`-movflags
 * frag_keyframe+empty_moov+default_base_moof[+frag_every_frame]`) into the init segment
 * (ftyp+moov) and media fragments (moof+mdat), each marked keyframe or not, with the video
 * track's codec string, size and timescale read from the moov.
 *
 * Pure (Uint8Array and DataView only) so it can move to a worker. Everything it reads is
 * treated as hostile: a `copy` camera remuxes whatever the RTSP source sends, so every
 * declared size is checked against the limits before a byte is buffered for it, every nested
 * box against its parent, and every field read against its box's end. Any failure is an
 * Fmp4Error; after one the splitter refuses further input (the caller restarts ffmpeg).
 *
 * Top level, in the order ffmpeg writes it:
 * - `ftyp` then `moov` make the init segment, emitted when the moov completes. A later `ftyp`
 *   (ffmpeg restarted) starts a new init; a later bare `moov` makes one with the last ftyp.
 * - `styp`, `sidx` and `prft` before a `moof` are kept and emitted at the front of that
 *   fragment (they belong to the media segment, and MSE accepts them); `free` and `skip` are
 *   dropped wherever they are, as are `mfra`/`mfro` (the random-access index a file ends
 *   with). These are skipped as they stream past, never buffered.
 * - `moof` and the `mdat` after it make one fragment. An mdat without a moof, a moof followed
 *   by another moof, a moof before the init, and a size-0 ("to end of file") box, meaningless
 *   on a pipe, are errors.
 * - Any other box is skipped when it is at most 64 KiB (a `uuid` or `emsg` a source may carry)
 *   and FMP4_UNSUPPORTED when larger; a box type that is not 4 printable characters means
 *   the stream is out of step: FMP4_MALFORMED.
 *
 * Cost: every byte is copied twice at most (the unconsumed tail of a read into the pending
 * queue, then into the emitted piece); a box arriving one byte per read is joined once.
 */
import { avcCodecString } from './avc-codec.js';

export { avcCodecString, codecAccepted } from './avc-codec.js';

export interface InitSegment {
  kind: 'init';
  /** ftyp+moov bytes, copied. */
  data: Uint8Array;
  /** e.g. 'avc1.64001e' (`avc3.` when the sample entry is avc3). */
  codec: string;
  width: number;
  height: number;
  /** The video track's mdhd timescale. */
  timescale: number;
}

export interface MediaFragment {
  kind: 'fragment';
  /** styp/sidx/prft (when the source wrote them) + moof + mdat, copied. */
  data: Uint8Array;
  keyframe: boolean;
  /** tfdt baseMediaDecodeTime of the video track, in timescale units. */
  decodeTime: number;
  /** Where in `data` that value is, and its width (tfdt version 0: 4 bytes, 1: 8), for rebaseDecodeTime. */
  decodeTimeAt: number;
  decodeTimeBytes: 4 | 8;
  /** Sum of the video samples' durations in timescale units, 0 when unknown. */
  duration: number;
}

/**
 * Rewrites a fragment's tfdt in place (its `data` is the splitter's own copy), so a stream
 * that restarted at 0 continues the timeline a player already has. False when the value does
 * not fit the box's field (a version-0 tfdt past 2^32) and nothing was written.
 *
 * @example
 *   rebaseDecodeTime(fragment, fragment.decodeTime + offset)
 */
export function rebaseDecodeTime(fragment: MediaFragment, decodeTime: number): boolean {
  if (!Number.isSafeInteger(decodeTime) || decodeTime < 0) return false;
  const view = new DataView(fragment.data.buffer, fragment.data.byteOffset, fragment.data.byteLength);
  if (fragment.decodeTimeBytes === 8) view.setBigUint64(fragment.decodeTimeAt, BigInt(decodeTime));
  else if (decodeTime <= 0xffff_ffff) view.setUint32(fragment.decodeTimeAt, decodeTime);
  else return false;
  fragment.decodeTime = decodeTime;
  return true;
}

export type Fmp4Piece = InitSegment | MediaFragment;

export interface Fmp4Limits {
  /** Largest box, and largest fragment (moof+mdat and what precedes it). Default 8 MiB. */
  maxBoxBytes: number;
  /** Largest init segment (ftyp+moov). Default 64 KiB; never above maxBoxBytes. */
  maxInitBytes: number;
}

export const DEFAULT_FMP4_LIMITS: Readonly<Fmp4Limits> = {
  maxBoxBytes: 8 * 1024 * 1024,
  maxInitBytes: 64 * 1024,
};

/** Unknown top-level boxes up to this size are skipped; larger ones are an error. Also caps styp/sidx/prft. */
const SMALL_BOX_BYTES = 64 * 1024;

export type Fmp4ErrorCode = 'FMP4_MALFORMED' | 'FMP4_TOO_LARGE' | 'FMP4_UNSUPPORTED';

/**
 * What the splitter throws: the stream is broken (MALFORMED), over a limit (TOO_LARGE), or
 * valid MP4 this pipeline cannot serve (UNSUPPORTED: no H.264 video track, HEVC, size-0 box).
 * Messages name box types and sizes only, never bytes, so they may be logged or shown.
 *
 * @example
 *   throw new Fmp4Error('FMP4_MALFORMED', 'mdat without a moof');
 */
export class Fmp4Error extends Error {
  constructor(
    readonly code: Fmp4ErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'Fmp4Error';
  }
}

const malformed = (message: string) => new Fmp4Error('FMP4_MALFORMED', message);

/** What the moov says about the video track, kept to read the fragments. */
interface VideoTrack {
  trackId: number;
  codec: string;
  width: number;
  height: number;
  timescale: number;
  /** trex defaults from mvex, undefined when absent. */
  trexDuration: number | undefined;
  trexFlags: number | undefined;
}

// ---------------------------------------------------------------------------------------------
// Nested boxes

interface Box {
  type: string;
  /** Payload start (after the header) and box end, as offsets into the buffer. */
  start: number;
  end: number;
}

/** Boxes walked per parent at most: a real moov has a handful; this caps a hostile one's cost. */
const MAX_CHILDREN = 1024;

function fourcc(b: Uint8Array, at: number): string {
  return String.fromCharCode(b[at] as number, b[at + 1] as number, b[at + 2] as number, b[at + 3] as number);
}

/** Big-endian reads that check the field lies inside [.., end). */
class Reader {
  private readonly view: DataView;
  constructor(readonly bytes: Uint8Array) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  private need(at: number, n: number, end: number, what: string): void {
    if (at < 0 || at + n > end) throw malformed(`${what} runs past the end of its box`);
  }
  u8(at: number, end: number, what: string): number {
    this.need(at, 1, end, what);
    return this.view.getUint8(at);
  }
  u16(at: number, end: number, what: string): number {
    this.need(at, 2, end, what);
    return this.view.getUint16(at);
  }
  u32(at: number, end: number, what: string): number {
    this.need(at, 4, end, what);
    return this.view.getUint32(at);
  }
  /** A 64-bit field as a JS number; above 2^53 it could not be represented exactly. */
  u64(at: number, end: number, what: string): number {
    this.need(at, 8, end, what);
    const hi = this.view.getUint32(at);
    if (hi >= 0x200000) throw new Fmp4Error('FMP4_UNSUPPORTED', `${what} is beyond 2^53`);
    return hi * 0x1_0000_0000 + this.view.getUint32(at + 4);
  }

  /** The child boxes of the payload [start, end): every size is checked against the parent's end. */
  children(start: number, end: number, parent: string): Box[] {
    const out: Box[] = [];
    let at = start;
    while (at < end) {
      if (out.length >= MAX_CHILDREN) throw malformed(`${parent} has more than ${MAX_CHILDREN} boxes`);
      if (end - at < 8) throw malformed(`${end - at} stray bytes at the end of ${parent}`);
      let size = this.u32(at, end, `a box header in ${parent}`);
      const type = fourcc(this.bytes, at + 4);
      let header = 8;
      if (size === 1) {
        size = this.u64(at + 8, end, `the largesize of ${printable(type)} in ${parent}`);
        header = 16;
      } else if (size === 0) {
        throw malformed(`${printable(type)} in ${parent} has size 0`);
      }
      if (size < header) throw malformed(`${printable(type)} in ${parent} declares ${size} bytes`);
      if (size > end - at) throw malformed(`${printable(type)} (${size} bytes) overruns ${parent}`);
      out.push({ type, start: at + header, end: at + size });
      at += size;
    }
    return out;
  }

  child(start: number, end: number, parent: string, type: string): Box | undefined {
    return this.children(start, end, parent).find((b) => b.type === type);
  }
}

/** A box type for a message: printable characters as they are, anything else as hex. */
function printable(type: string): string {
  return /^[\x20-\x7e]{4}$/.test(type)
    ? `'${type}'`
    : `0x${[...type].map((c) => c.charCodeAt(0).toString(16).padStart(2, '0')).join('')}`;
}

// ---------------------------------------------------------------------------------------------
// moov

/** VisualSampleEntry: 8 bytes of SampleEntry, then width at +24, height at +26, children at +78. */
const VISUAL_WIDTH = 24;
const VISUAL_CHILDREN = 78;

function parseMoov(r: Reader, moov: Box): VideoTrack {
  const top = r.children(moov.start, moov.end, 'moov');
  let hevc = false;
  let other: string | undefined;
  let track: VideoTrack | undefined;
  for (const trak of top) {
    if (trak.type !== 'trak' || track) continue;
    const tkhd = r.child(trak.start, trak.end, 'trak', 'tkhd');
    const mdia = r.child(trak.start, trak.end, 'trak', 'mdia');
    if (!tkhd || !mdia) throw malformed('a trak without tkhd or mdia');
    const hdlr = r.child(mdia.start, mdia.end, 'mdia', 'hdlr');
    if (!hdlr) throw malformed('an mdia without hdlr');
    if (hdlr.end - hdlr.start < 12 || fourcc(r.bytes, hdlr.start + 8) !== 'vide') continue;
    const stsd = childPath(r, mdia, ['minf', 'stbl', 'stsd']);
    if (!stsd) throw malformed('a video track without minf/stbl/stsd');
    r.u32(stsd.start + 4, stsd.end, 'stsd entry_count');
    const entry = r.children(stsd.start + 8, stsd.end, 'stsd')[0];
    if (!entry) throw malformed('an stsd with no sample entry');
    if (entry.type === 'hvc1' || entry.type === 'hev1') {
      hevc = true;
      continue;
    }
    if (entry.type !== 'avc1' && entry.type !== 'avc3') {
      other = printable(entry.type);
      continue;
    }
    const width = r.u16(entry.start + VISUAL_WIDTH, entry.end, 'the sample entry width');
    const height = r.u16(entry.start + VISUAL_WIDTH + 2, entry.end, 'the sample entry height');
    if (entry.start + VISUAL_CHILDREN > entry.end) throw malformed(`${entry.type} is too short`);
    const avcC = r.child(entry.start + VISUAL_CHILDREN, entry.end, entry.type, 'avcC');
    if (!avcC) throw malformed(`${entry.type} without avcC`);
    let codec: string;
    try {
      codec = avcCodecString(r.bytes.subarray(avcC.start, avcC.end));
    } catch (err) {
      throw malformed((err as Error).message);
    }
    if (entry.type === 'avc3') codec = `avc3${codec.slice(4)}`;
    const version = r.u8(tkhd.start, tkhd.end, 'tkhd version');
    const trackId = r.u32(tkhd.start + (version === 1 ? 20 : 12), tkhd.end, 'tkhd track_ID');
    const mdhd = r.child(mdia.start, mdia.end, 'mdia', 'mdhd');
    if (!mdhd) throw malformed('a video track without mdhd');
    const mv = r.u8(mdhd.start, mdhd.end, 'mdhd version');
    const timescale = r.u32(mdhd.start + (mv === 1 ? 20 : 12), mdhd.end, 'mdhd timescale');
    if (timescale === 0) throw malformed('mdhd timescale is 0');
    track = { trackId, codec, width, height, timescale, trexDuration: undefined, trexFlags: undefined };
  }
  if (!track) {
    if (hevc)
      throw new Fmp4Error(
        'FMP4_UNSUPPORTED',
        'the video track is HEVC (hvc1/hev1); only H.264 is supported for now',
      );
    if (other) throw new Fmp4Error('FMP4_UNSUPPORTED', `the video track is ${other}, not H.264 (avc1/avc3)`);
    throw new Fmp4Error('FMP4_UNSUPPORTED', 'the moov has no video track');
  }
  const mvex = top.find((b) => b.type === 'mvex');
  if (mvex) {
    for (const trex of r.children(mvex.start, mvex.end, 'mvex')) {
      if (trex.type !== 'trex' || r.u32(trex.start + 4, trex.end, 'trex track_ID') !== track.trackId)
        continue;
      track.trexDuration = r.u32(trex.start + 12, trex.end, 'trex default_sample_duration');
      track.trexFlags = r.u32(trex.start + 20, trex.end, 'trex default_sample_flags');
    }
  }
  return track;
}

function childPath(r: Reader, from: Box, path: string[]): Box | undefined {
  let box: Box | undefined = from;
  for (const type of path) {
    if (!box) return undefined;
    box = r.child(box.start, box.end, box.type, type);
  }
  return box;
}

// ---------------------------------------------------------------------------------------------
// moof

const TFHD_BASE_DATA_OFFSET = 0x1;
const TFHD_SAMPLE_DESCRIPTION = 0x2;
const TFHD_DEFAULT_DURATION = 0x8;
const TFHD_DEFAULT_SIZE = 0x10;
const TFHD_DEFAULT_FLAGS = 0x20;
const TRUN_DATA_OFFSET = 0x1;
const TRUN_FIRST_FLAGS = 0x4;
const TRUN_DURATION = 0x100;
const TRUN_SIZE = 0x200;
const TRUN_FLAGS = 0x400;
const TRUN_CTS = 0x800;

/**
 * Sample flags mark a sync sample when sample_is_non_sync_sample (0x00010000) is clear and
 * sample_depends_on (bits 24-25) is not 1 ("depends on others"); ffmpeg writes 0x02000000 for
 * keyframes and 0x01010000 for the rest.
 */
function isSync(flags: number): boolean {
  return (flags & 0x0001_0000) === 0 && ((flags >>> 24) & 0x3) !== 1;
}

interface FragmentInfo {
  keyframe: boolean;
  decodeTime: number;
  /** Offset of the tfdt value in the moof's bytes; the splitter makes it relative to `data`. */
  decodeTimeAt: number;
  decodeTimeBytes: 4 | 8;
  duration: number;
}

function parseMoof(r: Reader, moof: Box, track: VideoTrack): FragmentInfo {
  for (const traf of r.children(moof.start, moof.end, 'moof')) {
    if (traf.type !== 'traf') continue;
    const boxes = r.children(traf.start, traf.end, 'traf');
    const tfhd = boxes.find((b) => b.type === 'tfhd');
    if (!tfhd) throw malformed('a traf without tfhd');
    const tfFlags = r.u32(tfhd.start, tfhd.end, 'tfhd flags') & 0xffffff;
    if (r.u32(tfhd.start + 4, tfhd.end, 'tfhd track_ID') !== track.trackId) continue;
    let at = tfhd.start + 8;
    if (tfFlags & TFHD_BASE_DATA_OFFSET) at += 8;
    if (tfFlags & TFHD_SAMPLE_DESCRIPTION) at += 4;
    let defaultDuration = track.trexDuration;
    let defaultFlags = track.trexFlags;
    if (tfFlags & TFHD_DEFAULT_DURATION) {
      defaultDuration = r.u32(at, tfhd.end, 'tfhd default_sample_duration');
      at += 4;
    }
    if (tfFlags & TFHD_DEFAULT_SIZE) at += 4;
    if (tfFlags & TFHD_DEFAULT_FLAGS) defaultFlags = r.u32(at, tfhd.end, 'tfhd default_sample_flags');

    const tfdt = boxes.find((b) => b.type === 'tfdt');
    if (!tfdt) throw malformed('the video traf has no tfdt');
    const decodeTimeBytes = r.u8(tfdt.start, tfdt.end, 'tfdt version') === 1 ? 8 : 4;
    const decodeTime =
      decodeTimeBytes === 8
        ? r.u64(tfdt.start + 4, tfdt.end, 'tfdt baseMediaDecodeTime')
        : r.u32(tfdt.start + 4, tfdt.end, 'tfdt baseMediaDecodeTime');

    let firstFlags: number | undefined;
    let duration = 0;
    let durationKnown = true;
    for (const trun of boxes) {
      if (trun.type !== 'trun') continue;
      const flags = r.u32(trun.start, trun.end, 'trun flags') & 0xffffff;
      const count = r.u32(trun.start + 4, trun.end, 'trun sample_count');
      let pos = trun.start + 8;
      if (flags & TRUN_DATA_OFFSET) pos += 4;
      let first: number | undefined;
      if (flags & TRUN_FIRST_FLAGS) {
        first = r.u32(pos, trun.end, 'trun first_sample_flags');
        pos += 4;
      }
      const per =
        (flags & TRUN_DURATION ? 4 : 0) +
        (flags & TRUN_SIZE ? 4 : 0) +
        (flags & TRUN_FLAGS ? 4 : 0) +
        (flags & TRUN_CTS ? 4 : 0);
      // Checked before the loop: a hostile sample_count cannot make it run past the box.
      if (count * per > trun.end - pos)
        throw malformed(`trun declares ${count} samples, its box holds fewer`);
      if (count > 0 && firstFlags === undefined) {
        const perSample =
          flags & TRUN_FLAGS
            ? r.u32(
                pos + (flags & TRUN_DURATION ? 4 : 0) + (flags & TRUN_SIZE ? 4 : 0),
                trun.end,
                'trun sample_flags',
              )
            : undefined;
        firstFlags = first ?? perSample ?? defaultFlags;
      }
      if (flags & TRUN_DURATION) {
        for (let i = 0; i < count; i++) duration += r.u32(pos + i * per, trun.end, 'trun sample_duration');
      } else if (defaultDuration !== undefined) {
        duration += defaultDuration * count;
      } else if (count > 0) {
        durationKnown = false;
      }
    }
    return {
      keyframe: firstFlags !== undefined && isSync(firstFlags),
      decodeTime,
      decodeTimeAt: tfdt.start + 4,
      decodeTimeBytes,
      duration: durationKnown ? duration : 0,
    };
  }
  throw new Fmp4Error('FMP4_UNSUPPORTED', `a moof without a traf for the video track (${track.trackId})`);
}

// ---------------------------------------------------------------------------------------------
// The byte queue

/** The reads not consumed yet, joined only when a whole box is there. */
class ByteQueue {
  private parts: Uint8Array[] = [];
  /** Bytes of parts[0] already consumed. */
  private head = 0;
  /** The block small tails are gathered in, and how much of it is filled. */
  private block: Uint8Array | undefined;
  private blockUsed = 0;
  length = 0;

  push(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    this.parts.push(chunk);
    this.length += chunk.length;
  }

  /** The first n bytes (n ≤ length), copied when they span reads. */
  peek(n: number): Uint8Array {
    const first = this.parts[0] as Uint8Array;
    if (first.length - this.head >= n) return first.subarray(this.head, this.head + n);
    const out = new Uint8Array(n);
    this.copyTo(out, 0, n, false);
    return out;
  }

  /** Copies the first n bytes into out at `offset`, consuming them when `consume`. */
  copyTo(out: Uint8Array, offset: number, n: number, consume = true): void {
    let head = this.head;
    let i = 0;
    let done = 0;
    while (done < n) {
      const part = this.parts[i] as Uint8Array;
      const take = Math.min(part.length - head, n - done);
      out.set(part.subarray(head, head + take), offset + done);
      done += take;
      head += take;
      if (head === part.length) {
        i++;
        head = 0;
      }
    }
    if (!consume) return;
    this.parts.splice(0, i);
    this.head = head;
    this.length -= n;
  }

  take(n: number): Uint8Array {
    const out = new Uint8Array(n);
    this.copyTo(out, 0, n);
    return out;
  }

  skip(n: number): void {
    let left = n;
    while (left > 0) {
      const part = this.parts[0] as Uint8Array;
      const take = Math.min(part.length - this.head, left);
      left -= take;
      this.head += take;
      if (this.head === part.length) {
        this.parts.shift();
        this.head = 0;
      }
    }
    this.length -= n;
  }

  /**
   * Replaces what is left of `chunk` (the caller's buffer, the last part) by a copy, so no read
   * is kept whole for its tail. Small tails are appended to a shared 64 KiB block instead of
   * each becoming its own array: a box arriving a byte per read then costs one array per
   * 64 KiB, not one per byte.
   */
  own(chunk: Uint8Array): void {
    const i = this.parts.length - 1;
    if (i < 0 || this.parts[i] !== chunk) return;
    const tail = chunk.subarray(i === 0 ? this.head : 0);
    if (i === 0) this.head = 0;
    if (tail.length > SMALL_TAIL) {
      this.parts[i] = tail.slice();
      return;
    }
    const prev = this.parts[i - 1];
    const block = this.block;
    if (
      prev &&
      block &&
      prev.buffer === block.buffer &&
      prev.byteOffset + prev.length === this.blockUsed &&
      this.blockUsed + tail.length <= block.length
    ) {
      block.set(tail, this.blockUsed);
      this.blockUsed += tail.length;
      this.parts[i - 1] = block.subarray(prev.byteOffset, this.blockUsed);
      this.parts.pop();
      return;
    }
    this.block = new Uint8Array(TAIL_BLOCK_BYTES);
    this.block.set(tail, 0);
    this.blockUsed = tail.length;
    this.parts[i] = this.block.subarray(0, tail.length);
  }
}

/** Tails up to this size are gathered in blocks of TAIL_BLOCK_BYTES (ByteQueue.own). */
const SMALL_TAIL = 1024;
const TAIL_BLOCK_BYTES = 64 * 1024;

// ---------------------------------------------------------------------------------------------
// The splitter

interface Header {
  type: string;
  size: number;
}

/** Top-level boxes that go at the front of the next fragment. */
const PREFIX_TYPES = new Set(['styp', 'sidx', 'prft']);
/** Top-level boxes dropped as they stream past, up to maxBoxBytes. */
const SKIP_TYPES = new Set(['free', 'skip', 'mfra', 'mfro']);

/**
 * Feeds on ffmpeg's fMP4 output in reads of any size and returns the init segments and
 * fragments each read completes. At most about maxBoxBytes is held between reads.
 *
 * @example
 *   const splitter = new Fmp4Splitter();
 *   child.stdout.on('data', (chunk: Buffer) => {
 *     for (const piece of splitter.push(chunk)) publish(piece); // throws Fmp4Error: restart ffmpeg
 *   });
 */
export class Fmp4Splitter {
  private readonly limits: Fmp4Limits;
  private queue = new ByteQueue();
  /** The header of the box being waited for, once read. */
  private box: Header | undefined;
  /** Bytes of a skipped box still to drop. */
  private skipLeft = 0;
  private ftyp: Uint8Array | undefined;
  /** Set when the current ftyp has its moov: fragments may follow. */
  private track: VideoTrack | undefined;
  private prefix: Uint8Array[] = [];
  private prefixBytes = 0;
  private moof: { bytes: Uint8Array; info: FragmentInfo } | undefined;
  private failed = false;

  constructor(limits: Partial<Fmp4Limits> = {}) {
    const maxBoxBytes = limits.maxBoxBytes ?? DEFAULT_FMP4_LIMITS.maxBoxBytes;
    const maxInitBytes = Math.min(limits.maxInitBytes ?? DEFAULT_FMP4_LIMITS.maxInitBytes, maxBoxBytes);
    if (!(maxBoxBytes >= 16) || !(maxInitBytes >= 16))
      throw new RangeError('fMP4 limits must be at least 16 bytes');
    this.limits = { maxBoxBytes, maxInitBytes };
  }

  /**
   * Bytes held waiting for the rest of a box or fragment (a partial box, or the moof and
   * prefix boxes waiting for their mdat, or an ftyp waiting for its moov): at most
   * maxBoxBytes + 16 after any push.
   */
  get pendingBytes(): number {
    const ftyp = this.track ? 0 : (this.ftyp?.length ?? 0);
    return this.queue.length + this.prefixBytes + (this.moof?.bytes.length ?? 0) + ftyp;
  }

  /**
   * Feeds bytes as they come off the pipe; returns the pieces completed by them, in order.
   * Throws Fmp4Error; after a throw the splitter is unusable (every later push throws).
   */
  push(chunk: Uint8Array): Fmp4Piece[] {
    if (this.failed) throw malformed('the fMP4 splitter already failed; start a new one');
    const out: Fmp4Piece[] = [];
    try {
      this.queue.push(chunk);
      this.drain(out);
      this.queue.own(chunk);
      return out;
    } catch (err) {
      this.failed = true;
      this.queue = new ByteQueue();
      this.prefix = [];
      this.prefixBytes = 0;
      this.moof = undefined;
      this.ftyp = undefined;
      if (err instanceof Fmp4Error) throw err;
      // Not expected: every read is bounds-checked. Kept as `cause` so the fuzz tests see it.
      throw Object.assign(malformed('the fMP4 stream could not be parsed'), { cause: err });
    }
  }

  private drain(out: Fmp4Piece[]): void {
    const q = this.queue;
    for (;;) {
      if (this.skipLeft > 0) {
        const n = Math.min(this.skipLeft, q.length);
        q.skip(n);
        this.skipLeft -= n;
        if (this.skipLeft > 0) return;
      }
      if (!this.box) {
        const header = this.readHeader();
        if (!header) return;
        if (this.admit(header) === 'skip') {
          const n = Math.min(header.size, q.length);
          q.skip(n);
          this.skipLeft = header.size - n;
          continue;
        }
        this.box = header;
      }
      const box = this.box;
      if (q.length < box.size) return;
      this.box = undefined;
      this.complete(box, out);
    }
  }

  /** The next box header, once its 8 (or 16, with a largesize) bytes are there. */
  private readHeader(): Header | undefined {
    const q = this.queue;
    if (q.length < 8) return undefined;
    const head = q.peek(8);
    const size32 = new DataView(head.buffer, head.byteOffset, 8).getUint32(0);
    const type = fourcc(head, 4);
    if (!/^[\x20-\x7e]{4}$/.test(type))
      throw malformed(`a top-level box type ${printable(type)} is not a box type`);
    if (size32 === 0)
      throw new Fmp4Error(
        'FMP4_UNSUPPORTED',
        `'${type}' has size 0 (to end of file), which a live pipe cannot have`,
      );
    if (size32 !== 1) {
      if (size32 < 8) throw malformed(`'${type}' declares ${size32} bytes, less than its header`);
      return { type, size: size32 };
    }
    if (q.length < 16) return undefined;
    const long = q.peek(16);
    const lv = new DataView(long.buffer, long.byteOffset, 16);
    const hi = lv.getUint32(8);
    const lo = lv.getUint32(12);
    if (hi >= 0x200000 || hi * 0x1_0000_0000 + lo > this.limits.maxBoxBytes)
      throw new Fmp4Error('FMP4_TOO_LARGE', `'${type}' declares more than ${this.limits.maxBoxBytes} bytes`);
    const size = hi * 0x1_0000_0000 + lo;
    if (size < 16) throw malformed(`'${type}' declares ${size} bytes, less than its header`);
    return { type, size };
  }

  /** Checks a box against the state and the limits before a byte of it is buffered. */
  private admit({ type, size }: Header): 'buffer' | 'skip' {
    const { maxBoxBytes, maxInitBytes } = this.limits;
    const tooLarge = (what: string, limit: number) =>
      new Fmp4Error('FMP4_TOO_LARGE', `${what} of ${size} bytes is over the ${limit}-byte limit`);
    const held = this.prefixBytes + (this.moof?.bytes.length ?? 0);
    if (SKIP_TYPES.has(type)) {
      if (size > maxBoxBytes) throw tooLarge(`'${type}'`, maxBoxBytes);
      return 'skip';
    }
    if (this.moof && type !== 'mdat') throw malformed(`a moof followed by '${type}', not its mdat`);
    switch (type) {
      case 'ftyp':
      case 'moov': {
        if (this.prefixBytes > 0) throw malformed(`'${type}' after styp/sidx/prft, where a moof belongs`);
        if (type === 'ftyp' && size > maxInitBytes) throw tooLarge('an ftyp', maxInitBytes);
        if (type === 'moov') {
          if (!this.ftyp) throw malformed('a moov before any ftyp');
          if (this.ftyp.length + size > maxInitBytes)
            throw tooLarge('a moov', maxInitBytes - this.ftyp.length);
        }
        return 'buffer';
      }
      case 'moof':
        if (!this.track) throw malformed('a moof before the init segment (ftyp+moov)');
        if (held + size > maxBoxBytes) throw tooLarge('a moof', maxBoxBytes - held);
        return 'buffer';
      case 'mdat':
        if (!this.moof) throw malformed('an mdat without a moof');
        if (held + size > maxBoxBytes) throw tooLarge('an mdat', maxBoxBytes - held);
        return 'buffer';
      default:
        if (PREFIX_TYPES.has(type)) {
          if (!this.track) throw malformed(`'${type}' before the init segment`);
          if (size > SMALL_BOX_BYTES) throw tooLarge(`'${type}'`, SMALL_BOX_BYTES);
          if (held + size > maxBoxBytes) throw tooLarge(`'${type}'`, maxBoxBytes - held);
          return 'buffer';
        }
        if (size > SMALL_BOX_BYTES)
          throw new Fmp4Error(
            'FMP4_UNSUPPORTED',
            `unknown top-level box '${type}' of ${size} bytes (over ${SMALL_BOX_BYTES})`,
          );
        return 'skip';
    }
  }

  /** A whole box is in the queue: consume it and emit what it completes. */
  private complete({ type, size }: Header, out: Fmp4Piece[]): void {
    const q = this.queue;
    switch (type) {
      case 'ftyp':
        this.ftyp = q.take(size);
        this.track = undefined;
        return;
      case 'moov': {
        const ftyp = this.ftyp as Uint8Array;
        const data = new Uint8Array(ftyp.length + size);
        data.set(ftyp, 0);
        q.copyTo(data, ftyp.length, size);
        const r = new Reader(data);
        const headerLen = new DataView(data.buffer, ftyp.length, 4).getUint32(0) === 1 ? 16 : 8;
        const track = parseMoov(r, { type: 'moov', start: ftyp.length + headerLen, end: data.length });
        this.track = track;
        out.push({
          kind: 'init',
          data,
          codec: track.codec,
          width: track.width,
          height: track.height,
          timescale: track.timescale,
        });
        return;
      }
      case 'moof': {
        const bytes = q.take(size);
        const headerLen = new DataView(bytes.buffer, 0, 4).getUint32(0) === 1 ? 16 : 8;
        const info = parseMoof(
          new Reader(bytes),
          { type, start: headerLen, end: size },
          this.track as VideoTrack,
        );
        this.moof = { bytes, info };
        return;
      }
      case 'mdat': {
        const moof = this.moof as { bytes: Uint8Array; info: FragmentInfo };
        const data = new Uint8Array(this.prefixBytes + moof.bytes.length + size);
        let at = 0;
        for (const p of this.prefix) {
          data.set(p, at);
          at += p.length;
        }
        data.set(moof.bytes, at);
        q.copyTo(data, at + moof.bytes.length, size);
        this.prefix = [];
        this.prefixBytes = 0;
        this.moof = undefined;
        out.push({ kind: 'fragment', data, ...moof.info, decodeTimeAt: at + moof.info.decodeTimeAt });
        return;
      }
      default: {
        // styp, sidx or prft: held for the next moof.
        const bytes = q.take(size);
        this.prefix.push(bytes);
        this.prefixBytes += size;
      }
    }
  }
}
