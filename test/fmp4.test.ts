import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ffmpegInstaller from '@ffmpeg-installer/ffmpeg';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  avcCodecString,
  codecAccepted,
  Fmp4Error,
  type Fmp4Limits,
  type Fmp4Piece,
  Fmp4Splitter,
  type InitSegment,
  type MediaFragment,
} from '../src/media/fmp4.js';
import { fileBudget } from './fuzz/budget.js';
import { reliability } from './support/reliability.js';

/**
 * The fragmented-MP4 splitter (src/media/fmp4.ts) on real ffmpeg output: the two captured
 * streams in test/corpus/fmp4/ and one generated here with the bundled 2018 ffmpeg and the
 * camera pipeline's flags. Pieces must not depend on how the pipe cuts the stream; keyframes,
 * decode times and codec strings must agree with Debian's ffprobe; init + fragments must be a
 * file ffprobe reads. Then hostile streams: hand-made boxes for each rule, and fast-check
 * mutations of a real stream, which may only ever end in an Fmp4Error, within the limits.
 */
const rel = reliability('fmp4');
const budget = fileBudget(3);
const FFPROBE = '/usr/bin/ffprobe';
const FLAGS = 'frag_keyframe+empty_moov+default_base_moof+frag_every_frame';
const corpus = (name: string) =>
  new Uint8Array(readFileSync(join(import.meta.dirname, 'corpus', 'fmp4', name)));
const tmp = mkdtempSync(join(tmpdir(), 'framehub-fmp4-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** The captured corpus: name → GOP length, frames, size (as the files were made; see the README there). */
const CORPUS = [
  { file: 'high-160x90-g10.mp4', gop: 10, frames: 30, width: 160, height: 90 },
  { file: 'baseline-176x144-g5.mp4', gop: 5, frames: 20, width: 176, height: 144 },
];

/** Feeds `bytes` in reads of the given sizes (cycled), checking the pending bound after each. */
function split(
  bytes: Uint8Array,
  sizes: readonly number[] = [bytes.length],
  limits?: Partial<Fmp4Limits>,
): Fmp4Piece[] {
  const s = new Fmp4Splitter(limits);
  const bound = (limits?.maxBoxBytes ?? 8 * 1024 * 1024) + 16;
  const out: Fmp4Piece[] = [];
  let at = 0;
  for (let i = 0; at < bytes.length; i++) {
    const n = Math.max(1, sizes[i % sizes.length] as number);
    out.push(...s.push(bytes.subarray(at, at + n)));
    at += n;
    if (s.pendingBytes > bound) throw new Error(`pendingBytes ${s.pendingBytes} over ${bound}`);
  }
  return out;
}

const inits = (p: Fmp4Piece[]) => p.filter((x): x is InitSegment => x.kind === 'init');
const fragments = (p: Fmp4Piece[]) => p.filter((x): x is MediaFragment => x.kind === 'fragment');

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** ffprobe's view of a file: its video stream and per-packet keyframe flags. */
function probe(bytes: Uint8Array): { stream: Record<string, string>; keyframes: boolean[] } {
  const path = join(tmp, `probe-${Math.random().toString(36).slice(2)}.mp4`);
  writeFileSync(path, bytes);
  const streams = spawnSync(
    FFPROBE,
    ['-v', 'error', '-count_frames', '-select_streams', 'v:0', '-show_streams', path],
    {
      encoding: 'utf8',
    },
  );
  const packets = spawnSync(FFPROBE, ['-v', 'error', '-select_streams', 'v:0', '-show_packets', path], {
    encoding: 'utf8',
  });
  rmSync(path);
  expect(streams.status, streams.stderr).toBe(0);
  const stream = Object.fromEntries(
    streams.stdout
      .split('\n')
      .filter((l) => l.includes('='))
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  );
  const keyframes = packets.stdout
    .split('\n')
    .filter((l) => l.startsWith('flags='))
    .map((l) => l.slice(6).startsWith('K'));
  return { stream, keyframes };
}

/** ffprobe's profile name → profile_idc. */
const PROFILE_IDC: Record<string, number> = {
  Baseline: 0x42,
  'Constrained Baseline': 0x42,
  Main: 0x4d,
  Extended: 0x58,
  High: 0x64,
  'High 10': 0x6e,
  'High 4:2:2': 0x7a,
  'High 4:4:4 Predictive': 0xf4,
};

/** Checks a whole split stream against ffprobe, returning the pieces. */
function checkAgainstFfprobe(bytes: Uint8Array, gop: number, frames: number, width: number, height: number) {
  const pieces = split(bytes);
  const [init, ...rest] = pieces;
  expect(init?.kind).toBe('init');
  expect(inits(pieces)).toHaveLength(1);
  const frags = fragments(rest);
  expect(frags).toHaveLength(frames);
  const { stream, keyframes } = probe(bytes);
  const i = init as InitSegment;
  expect([i.width, i.height]).toEqual([width, height]);
  expect(stream.codec_name).toBe('h264');
  // avc1.PPCCLL: profile_idc and level_idc as ffprobe reports them (level 30 → 0x1e).
  expect(i.codec).toMatch(/^avc1\.[0-9a-f]{6}$/);
  expect(parseInt(i.codec.slice(5, 7), 16)).toBe(PROFILE_IDC[stream.profile as string]);
  expect(parseInt(i.codec.slice(9, 11), 16)).toBe(Number(stream.level));
  // ffprobe's time_base is the mdhd timescale.
  expect(`1/${i.timescale}`).toBe(stream.time_base);
  // Keyframes every `gop` frames exactly, as ffprobe flags the packets.
  expect(frags.map((f) => f.keyframe)).toEqual(keyframes);
  expect(frags.map((f, n) => (f.keyframe ? n : -1)).filter((n) => n >= 0)).toEqual(
    Array.from({ length: Math.ceil(frames / gop) }, (_, k) => k * gop),
  );
  // Decode times are contiguous: each fragment starts where the last one ended.
  expect(frags[0]?.decodeTime).toBe(0);
  for (let n = 1; n < frags.length; n++)
    expect(frags[n]?.decodeTime).toBe(
      (frags[n - 1] as MediaFragment).decodeTime + (frags[n - 1] as MediaFragment).duration,
    );
  expect(frags.every((f) => f.duration > 0)).toBe(true);
  // init + fragments is the stream again but for the mfra ffmpeg ends with (skipped), and a
  // file ffprobe reads with every frame.
  const joined = concat(pieces.map((p) => p.data));
  expect(Buffer.compare(joined, bytes.subarray(0, joined.length))).toBe(0);
  expect(Buffer.from(bytes.subarray(joined.length + 4, joined.length + 8)).toString('latin1')).toBe('mfra');
  expect(new DataView(bytes.buffer, bytes.byteOffset + joined.length).getUint32(0)).toBe(
    bytes.length - joined.length,
  );
  const rebuilt = probe(concat([i.data, ...frags.map((f) => f.data)]));
  expect(rebuilt.stream.codec_name).toBe('h264');
  expect(Number(rebuilt.stream.nb_read_frames)).toBe(frames);
  return pieces;
}

/** Pieces as plain values, for comparing two splits. */
const shape = (pieces: Fmp4Piece[]) =>
  pieces.map((p) => ({ ...p, data: Buffer.from(p.data).toString('base64') }));

describe('real ffmpeg streams', () => {
  let generated: Uint8Array;
  beforeAll(() => {
    // The camera pipeline's command (-re dropped: the test wants the bytes, not real time).
    const r = spawnSync(
      ffmpegInstaller.path,
      [
        ...[
          '-hide_banner',
          '-loglevel',
          'error',
          '-f',
          'lavfi',
          '-i',
          'testsrc2=size=640x360:rate=15',
          '-t',
          '4',
        ],
        ...[
          '-c:v',
          'libx264',
          '-preset',
          'veryfast',
          '-tune',
          'zerolatency',
          '-g',
          '30',
          '-pix_fmt',
          'yuv420p',
        ],
        ...['-f', 'mp4', '-movflags', FLAGS, 'pipe:1'],
      ],
      { maxBuffer: 64 * 1024 * 1024 },
    );
    expect(r.status, r.stderr?.toString()).toBe(0);
    generated = new Uint8Array(r.stdout);
  });

  it('a generated 640x360 stream: init, 60 fragments, a keyframe every 30, codec and frames as ffprobe says', () => {
    const pieces = checkAgainstFfprobe(generated, 30, 60, 640, 360);
    expect((pieces[0] as InitSegment).timescale).toBe(15360);
    expect(fragments(pieces)[1]?.duration).toBe(1024);
  });

  it.each(CORPUS)('the captured $file agrees with ffprobe', ({ file, gop, frames, width, height }) => {
    checkAgainstFfprobe(corpus(file), gop, frames, width, height);
  });

  it('the pieces do not depend on how the pipe cuts the stream (1 byte, odd sizes, 4 KiB, 64 KiB)', () => {
    const whole = shape(split(generated));
    for (const sizes of [[1], [7, 13, 1, 4093], [3, 1021, 65_537], [4096], [65_536]])
      expect(shape(split(generated, sizes))).toEqual(whole);
    const small = corpus(CORPUS[0]?.file as string);
    expect(shape(split(small, [1]))).toEqual(shape(split(small)));
  });

  it('a restarted ffmpeg (a second ftyp+moov mid-stream) starts a new init', () => {
    const a = corpus(CORPUS[0]?.file as string);
    const b = corpus(CORPUS[1]?.file as string);
    const pieces = split(concat([a, b]), [1000]);
    expect(pieces.map((p) => p.kind).filter((k, n, all) => k !== all[n - 1])).toEqual([
      'init',
      'fragment',
      'init',
      'fragment',
    ]);
    expect(inits(pieces).map((i) => [i.width, i.height])).toEqual([
      [160, 90],
      [176, 144],
    ]);
  });

  it('copies what it emits: mutating the input afterwards changes no piece', () => {
    const bytes = corpus(CORPUS[0]?.file as string);
    const before = shape(split(bytes));
    const s = new Fmp4Splitter();
    const copy = bytes.slice();
    const pieces = s.push(copy);
    copy.fill(0);
    expect(shape(pieces)).toEqual(before);
  });
});

// ---------------------------------------------------------------------------------------------
// Hand-made boxes

const u32 = (n: number) => {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n);
  return b;
};
const ascii = (s: string) => new Uint8Array([...s].map((c) => c.charCodeAt(0)));
/** A box with a 32-bit size. */
const box = (type: string, ...payload: Uint8Array[]) => {
  const body = concat(payload);
  return concat([u32(8 + body.length), ascii(type), body]);
};
/** A header declaring `size` (for lies), with no payload. */
const header = (type: string, size: number) => concat([u32(size), ascii(type)]);

/** Splits the real init out of the small corpus file: [ftyp, moov, first fragment bytes]. */
function realParts() {
  const bytes = corpus(CORPUS[0]?.file as string);
  const pieces = split(bytes);
  const init = pieces[0] as InitSegment;
  const ftypLen = new DataView(init.data.buffer).getUint32(0);
  return {
    ftyp: init.data.subarray(0, ftypLen),
    moov: init.data.subarray(ftypLen),
    init: init.data,
    frags: fragments(pieces).map((f) => f.data),
  };
}

function errorOf(bytes: Uint8Array, limits?: Partial<Fmp4Limits>): string {
  try {
    split(bytes, [bytes.length], limits);
    return 'no error';
  } catch (err) {
    expect(err).toBeInstanceOf(Fmp4Error);
    expect((err as Error).cause).toBeUndefined();
    return (err as Fmp4Error).code;
  }
}

describe('box rules', () => {
  const real = realParts();
  const frag = real.frags[0] as Uint8Array;
  const moofLen = new DataView(frag.buffer, frag.byteOffset).getUint32(0);
  const moof = frag.subarray(0, moofLen);
  const mdat = frag.subarray(moofLen);

  it.each<[string, string, Uint8Array]>([
    ['size 0 (to end of file)', 'FMP4_UNSUPPORTED', header('moof', 0)],
    ['size 7', 'FMP4_MALFORMED', header('ftyp', 7)],
    ['size 1 with a largesize of 12', 'FMP4_MALFORMED', concat([header('ftyp', 1), u32(0), u32(12)])],
    ['size 1 with a largesize of 2^40', 'FMP4_TOO_LARGE', concat([header('mdat', 1), u32(256), u32(0)])],
    [
      'size 1 with a largesize of 2^64-1',
      'FMP4_TOO_LARGE',
      concat([header('mdat', 1), u32(0xffffffff), u32(0xffffffff)]),
    ],
    ['size 0xffffffff free box', 'FMP4_TOO_LARGE', header('free', 0xffffffff)],
    ['a box type that is not text', 'FMP4_MALFORMED', concat([u32(16), Uint8Array.of(0, 1, 2, 3)])],
    ['an mdat first', 'FMP4_MALFORMED', box('mdat', Uint8Array.of(1, 2, 3))],
    ['a moov before any ftyp', 'FMP4_MALFORMED', real.moov],
    ['a moof before the init', 'FMP4_MALFORMED', concat([real.ftyp, moof])],
    ['an mdat without a moof', 'FMP4_MALFORMED', concat([real.init, mdat])],
    ['a moof then a moof', 'FMP4_MALFORMED', concat([real.init, moof, moof, mdat])],
    ['a 100 KiB unknown box', 'FMP4_UNSUPPORTED', header('junk', 100 * 1024)],
    ['an ftyp over maxInitBytes', 'FMP4_TOO_LARGE', header('ftyp', 70 * 1024)],
    [
      'an mdat over maxBoxBytes',
      'FMP4_TOO_LARGE',
      concat([real.init, moof, header('mdat', 9 * 1024 * 1024)]),
    ],
    [
      'a moov with no video track',
      'FMP4_UNSUPPORTED',
      concat([real.ftyp, box('moov', box('mvhd', new Uint8Array(100)))]),
    ],
    ['a moov child over its parent', 'FMP4_MALFORMED', concat([real.ftyp, box('moov', header('trak', 64))])],
  ])('%s → %s', (_name, code, bytes) => {
    expect(errorOf(bytes)).toBe(code);
  });

  it('an HEVC track is FMP4_UNSUPPORTED and says so', () => {
    const moov = real.moov.slice();
    const at = Buffer.from(moov).indexOf('avc1');
    moov.set(ascii('hvc1'), at);
    const s = new Fmp4Splitter();
    expect(() => s.push(concat([real.ftyp, moov]))).toThrow(/HEVC/);
  });

  it('an avc3 sample entry (parameter sets in-band) gets an avc3 codec string', () => {
    const moov = real.moov.slice();
    moov.set(ascii('avc3'), Buffer.from(moov).indexOf('avc1'));
    const [init] = split(concat([real.ftyp, moov]));
    expect((init as InitSegment).codec).toBe('avc3.64000a');
  });

  it('skips free, skip, unknown small boxes and a trailing mfra; keeps styp/sidx/prft in the next fragment', () => {
    const styp = box('styp', ascii('msdh'), u32(0), ascii('msdh'));
    const prft = box('prft', new Uint8Array(16));
    const stream = concat([
      real.init,
      box('free', new Uint8Array(100)),
      styp,
      prft,
      box('uuid', new Uint8Array(40)),
      frag,
      box('skip'),
      ...real.frags.slice(1),
      box('mfra', box('mfro', new Uint8Array(8))),
    ]);
    const pieces = split(stream, [5]);
    const frags = fragments(pieces);
    expect(frags).toHaveLength(real.frags.length);
    expect(Buffer.compare(frags[0]?.data as Uint8Array, concat([styp, prft, frag]))).toBe(0);
    expect(frags[0]?.keyframe).toBe(true);
  });

  it('holds no more than maxBoxBytes + 16 while a box trickles in, and fails past the limit before buffering it', () => {
    const s = new Fmp4Splitter({ maxBoxBytes: 1024 });
    s.push(real.init);
    s.push(moof);
    expect(s.pendingBytes).toBe(moof.length);
    // An mdat that would make the fragment 2 bytes over the limit: refused on its header.
    expect(() => s.push(header('mdat', 1024 - moof.length + 2))).toThrow(Fmp4Error);
    expect(() => s.push(new Uint8Array(1))).toThrow(/already failed/);
    // An allowed box trickling in one byte at a time is held, and released when complete.
    const t = new Fmp4Splitter({ maxBoxBytes: 4096 });
    t.push(real.init);
    const big = box('free', new Uint8Array(4000));
    for (const b of big) {
      t.push(Uint8Array.of(b));
      expect(t.pendingBytes).toBeLessThanOrEqual(16);
    }
  });

  /** Whether a real fragment (n: 0 is a keyframe, 1 is not), its tfhd and trun patched in place, splits as a keyframe. */
  function patched(n: number, patch: (at: { tfhd: number; trun: number }, v: DataView) => void): boolean {
    const f = (real.frags[n] as Uint8Array).slice();
    // Offsets of the full boxes' version+flags word.
    patch(
      { tfhd: Buffer.from(f).indexOf('tfhd') + 4, trun: Buffer.from(f).indexOf('trun') + 4 },
      new DataView(f.buffer),
    );
    return fragments(split(concat([real.init, f])))[0]?.keyframe as boolean;
  }

  it('reads keyframes from trun first_sample_flags, then sample flags, then tfhd, then trex defaults', () => {
    // As ffmpeg writes them: trun flags 0x5 with first_sample_flags 0x02000000 on keyframes; trun
    // flags 0x1 and tfhd default_sample_flags 0x01010000 (non-sync) on the rest; trex flags 0.
    expect(patched(0, () => {})).toBe(true);
    expect(patched(1, () => {})).toBe(false);
    // first_sample_flags wins over the tfhd default.
    expect(patched(0, (at, v) => v.setUint32(at.trun + 12, 0x01010000))).toBe(false);
    // Sample flags (0x400) for a single sample sit where first_sample_flags was; tfhd says sync.
    // tfhd as ffmpeg writes it (flags 0x20038): flags, track_ID, duration (0x8), size (0x10), flags (0x20).
    const tfhdFlags = (at: { tfhd: number }) => at.tfhd + 4 + 4 + 4 + 4;
    expect(
      patched(0, (at, v) => {
        v.setUint32(at.trun, 0x401);
        v.setUint32(at.trun + 12, 0x01010000);
        v.setUint32(tfhdFlags(at), 0x02000000);
      }),
    ).toBe(false);
    expect(patched(0, (at, v) => v.setUint32(at.trun, 0x401))).toBe(true);
    // No trun flags: the tfhd default decides.
    expect(patched(1, (at, v) => v.setUint32(tfhdFlags(at), 0x02000000))).toBe(true);
    // No tfhd default either (flag 0x20 cleared; its 4 bytes are then trailing): trex's 0 means sync.
    expect(patched(1, (at, v) => v.setUint32(at.tfhd, 0x20018))).toBe(true);
  });

  it('falls back to the trex default_sample_flags in the moov', () => {
    const init = real.init.slice();
    new DataView(init.buffer).setUint32(Buffer.from(init).indexOf('trex') + 4 + 20, 0x01010000);
    const f = (real.frags[1] as Uint8Array).slice();
    new DataView(f.buffer).setUint32(Buffer.from(f).indexOf('tfhd') + 4, 0x20018);
    expect(fragments(split(concat([init, f])))[0]?.keyframe).toBe(false);
  });
});

describe('codec strings', () => {
  it('avcCodecString reads profile, compatibility and level', () => {
    expect(avcCodecString(Uint8Array.of(1, 0x64, 0x00, 0x1e, 0xff, 0xe1))).toBe('avc1.64001e');
    expect(avcCodecString(Uint8Array.of(1, 0x42, 0xc0, 0x0a))).toBe('avc1.42c00a');
    expect(() => avcCodecString(Uint8Array.of(1, 0x42))).toThrow(RangeError);
  });

  it('codecAccepted: a High or Main decoder plays its subsets, full Baseline only itself', () => {
    expect(codecAccepted('avc1.4d401f', ['avc1.640033'])).toBe(true);
    expect(codecAccepted('avc1.42e01e', ['avc1.640028'])).toBe(true);
    expect(codecAccepted('avc1.42e01e', ['avc1.4d401f'])).toBe(true);
    // Full Baseline (no constraint_set1) may use FMO/ASO, which Main and High decoders lack.
    expect(codecAccepted('avc1.42001e', ['avc1.640028'])).toBe(false);
    expect(codecAccepted('avc1.640028', ['avc1.4d4033'])).toBe(false);
    expect(codecAccepted('avc1.4d4028', ['avc1.64001f'])).toBe(false);
  });

  it('codecAccepted: same family and profile, level up to the highest accepted', () => {
    expect(codecAccepted('avc1.64001e', ['avc1.42e01f', 'avc1.640028'])).toBe(true);
    expect(codecAccepted('avc1.64001E', ['AVC1.640028'])).toBe(true);
    expect(codecAccepted('avc1.640033', ['avc1.640028'])).toBe(false);
    expect(codecAccepted('avc1.64001e', ['avc1.4d0028', 'avc1.42e033'])).toBe(false);
    expect(codecAccepted('avc3.64001e', ['avc1.640028'])).toBe(false);
    expect(codecAccepted('avc1.42c00a', ['avc1.42e01e'])).toBe(true);
    expect(codecAccepted('hvc1.1.6.L93.B0', ['hvc1.1.6.L93.B0'])).toBe(false);
    expect(codecAccepted('avc1.64001e', [])).toBe(false);
    expect(codecAccepted('avc1.64001e', [1, null, {}] as unknown as string[])).toBe(false);
  });
});

// ---------------------------------------------------------------------------------------------
// Fuzz: mutations of a real stream

/** Where the boxes of a stream are, top level and nested (containers walked), with their parent's end. */
function boxOffsets(bytes: Uint8Array): { at: number; parentEnd: number }[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const containers: Record<string, number> = {
    moov: 0,
    trak: 0,
    mdia: 0,
    minf: 0,
    stbl: 0,
    mvex: 0,
    moof: 0,
    traf: 0,
    stsd: 8,
    avc1: 78,
  };
  const out: { at: number; parentEnd: number }[] = [];
  const walk = (from: number, end: number) => {
    for (let at = from; at + 8 <= end; ) {
      const size = view.getUint32(at);
      if (size < 8 || at + size > end) return;
      out.push({ at, parentEnd: end });
      const type = String.fromCharCode(...bytes.subarray(at + 4, at + 8));
      const skip = containers[type];
      if (skip !== undefined) walk(at + 8 + skip, at + size);
      at += size;
    }
  };
  walk(0, bytes.length);
  return out;
}

type Mutation =
  | { kind: 'flip'; pos: number; bit: number }
  | { kind: 'truncate'; pos: number }
  | { kind: 'size'; box: number; value: number | 'over' }
  | { kind: 'splice'; pos: number; bytes: Uint8Array };

function mutate(src: Uint8Array, offsets: { at: number; parentEnd: number }[], ms: Mutation[]): Uint8Array {
  let b: Uint8Array = src.slice();
  for (const m of ms) {
    if (b.length === 0) break;
    const view = new DataView(b.buffer);
    if (m.kind === 'flip') {
      const p = m.pos % b.length;
      b[p] = (b[p] as number) ^ (1 << m.bit);
    } else if (m.kind === 'truncate') {
      b = b.slice(0, m.pos % (b.length + 1));
    } else if (m.kind === 'size') {
      const o = offsets[m.box % offsets.length] as { at: number; parentEnd: number };
      if (o.at + 4 > b.length) continue;
      view.setUint32(o.at, m.value === 'over' ? o.parentEnd - o.at + 1 + (m.box % 64) : m.value);
    } else {
      const p = m.pos % b.length;
      b = concat([b.subarray(0, p), m.bytes, b.subarray(p)]);
    }
  }
  return b;
}

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), pos: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ kind: fc.constant('truncate' as const), pos: fc.nat() }),
  fc.record({
    kind: fc.constant('size' as const),
    box: fc.nat(),
    value: fc.oneof(
      fc.constantFrom<number | 'over'>(0, 1, 7, 8, 9, 16, 0x7fffffff, 0xffffffff, 'over'),
      fc.integer({ min: 0, max: 0xffffffff }),
    ),
  }),
  fc.record({
    kind: fc.constant('splice' as const),
    pos: fc.nat(),
    bytes: fc.uint8Array({ minLength: 1, maxLength: 24 }),
  }),
);

const CODES = new Set(['FMP4_MALFORMED', 'FMP4_TOO_LARGE', 'FMP4_UNSUPPORTED']);

/**
 * Feeds a hostile stream in the given reads; answers 'ok' or the error code. Fails the case on
 * anything but an Fmp4Error with no cause (a cause means an unchecked read was caught by the
 * last-resort wrapper), on pendingBytes over the bound, or on a push after a throw succeeding.
 */
function feedHostile(bytes: Uint8Array, sizes: readonly number[], limits: Partial<Fmp4Limits>): string {
  const s = new Fmp4Splitter(limits);
  const bound = (limits.maxBoxBytes ?? 8 * 1024 * 1024) + 16;
  let at = 0;
  let pieces = 0;
  try {
    for (let i = 0; at < bytes.length; i++) {
      const n = Math.max(1, sizes[i % sizes.length] as number);
      pieces += s.push(bytes.subarray(at, at + n)).length;
      at += n;
      if (s.pendingBytes > bound) throw new Error(`pendingBytes ${s.pendingBytes} over ${bound}`);
    }
    // Every piece is at least one 8-byte box.
    expect(pieces).toBeLessThanOrEqual(bytes.length / 8);
    return 'ok';
  } catch (err) {
    if (!(err instanceof Fmp4Error)) throw err;
    expect(err.cause).toBeUndefined();
    expect(CODES.has(err.code)).toBe(true);
    expect(() => s.push(Uint8Array.of(0))).toThrow(Fmp4Error);
    return err.code;
  }
}

describe('fuzz: mutated real streams', () => {
  const src = corpus(CORPUS[0]?.file as string);
  const offsets = boxOffsets(src);
  const limitsArb = fc.constantFrom<Partial<Fmp4Limits>>(
    {},
    { maxBoxBytes: 8192, maxInitBytes: 1024 },
    { maxBoxBytes: 2048 },
  );
  const sizesArb = fc.oneof(
    fc.constant([src.length * 2]),
    fc.constant([1]),
    fc.array(fc.integer({ min: 1, max: 5000 }), { minLength: 1, maxLength: 8 }),
  );

  it('the walk finds nested boxes to lie about', () => {
    // ftyp, moov and its tree, then moof/traf/tfhd/tfdt/trun + mdat per frame.
    expect(offsets.length).toBeGreaterThan(30 * 6);
  });

  it(
    'bit flips, truncations, splices and size fields (0/1/7/huge/0xffffffff/over the parent) only ever end in an Fmp4Error',
    () => {
      fc.assert(
        fc.property(
          fc.array(mutation, { minLength: 1, maxLength: 4 }),
          sizesArb,
          limitsArb,
          (ms, sizes, limits) => {
            const outcome = feedHostile(mutate(src, offsets, ms), sizes, limits);
            rel.record('fmp4 splitter (in-process): mutated ffmpeg stream', outcome);
          },
        ),
        budget.params(0, 0xf4a11, 600, { shrink: true }),
      );
    },
    budget.timeoutMs,
  );

  it(
    'size fields of nested boxes set to lies, in every box of the init and first fragments',
    () => {
      fc.assert(
        fc.property(
          fc.integer({ min: 0, max: 60 }),
          fc.constantFrom<number | 'over'>(0, 1, 7, 8, 12, 0x7fffffff, 0xffffffff, 'over'),
          sizesArb,
          (box, value, sizes) => {
            const outcome = feedHostile(mutate(src, offsets, [{ kind: 'size', box, value }]), sizes, {});
            rel.record('fmp4 splitter (in-process): one size field set to a lie', outcome);
          },
        ),
        budget.params(1, 0x5122e, 400, { shrink: true }),
      );
    },
    budget.timeoutMs,
  );

  it(
    'random bytes after a real init segment only ever end in an Fmp4Error',
    () => {
      const init = realParts().init;
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: 2048 }), sizesArb, (junk, sizes) => {
          const outcome = feedHostile(concat([init, junk]), sizes, { maxBoxBytes: 4096 });
          rel.record('fmp4 splitter (in-process): random bytes after a real init', outcome);
        }),
        budget.params(2, 0xa11b, 600, { shrink: true }),
      );
    },
    budget.timeoutMs,
  );
});
