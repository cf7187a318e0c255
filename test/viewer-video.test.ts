import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { root } from './helpers.js';

/**
 * The MSE player's DOM-free parts (src/server/viewer/js): the codec candidates it offers, the
 * media time → capture time map behind its latency, its live-edge decisions, the video record
 * checks and the tile's video counters. Plain browser JS, loaded by URL and typed here by the
 * shape the tests use; no timing is asserted, every clock is passed in.
 */
const viewerJs = join(root, 'src', 'server', 'viewer', 'js');
const load = <T>(name: string): Promise<T> => import(pathToFileURL(join(viewerJs, name)).href) as Promise<T>;

interface PlaybackState {
  currentTime: number;
  start: number;
  end: number;
  rate: number;
  starting: boolean;
}
interface LiveEdgeModule {
  AVC_CANDIDATES: readonly string[];
  mp4Type(codec: string): string;
  supportedCodecs(isTypeSupported: (type: string) => boolean, candidates?: readonly string[]): string[];
  CaptureClock: new (
    capacity?: number,
  ) => {
    add(pts: number, ts: number): void;
    captureAt(mediaTime: number): number | undefined;
    pts: number[];
  };
  LIVE_EDGE: {
    margin: number;
    target: number;
    catchUp: number;
    startSeek: number;
    seek: number;
    minRate: number;
    maxRate: number;
  };
  liveEdgeAction(s: PlaybackState): { seekTo?: number; rate: number };
  trimRange(
    bufferedStart: number,
    currentTime: number,
    keep?: number,
    step?: number,
  ): [number, number] | undefined;
}
interface VideoRecordsModule {
  MAX_FRAGMENT_BYTES: number;
  readVideoInit(r: Record<string, unknown>, bytesOf: (d: unknown) => Uint8Array | undefined): object | string;
  readVideoFragment(
    r: Record<string, unknown>,
    bytesOf: (d: unknown) => Uint8Array | undefined,
  ): object | string;
  dispatchVideo(
    value: unknown,
    bytesOf: (d: unknown) => Uint8Array | undefined,
    to: { init(r: object): void; fragment(r: object): void; malformed(kind: string, detail: string): void },
  ): boolean;
}
interface VideoStatsModule {
  VideoStats: new (
    windowMs: number,
  ) => {
    presented: number;
    latencyMs: number | undefined;
    firstPictureMs: number | undefined;
    skips: number;
    fragment(seq: number): void;
    restart(): void;
    present(now: number, latencyMs: number | undefined, sinceOpenMs: number | undefined): void;
    meanLatency(now: number): number | undefined;
    drainLatencies(): { latencies: number[]; dropped: number };
  };
}

const liveEdge = () => load<LiveEdgeModule>('live-edge.js');
const bytes = (d: unknown) => (d instanceof Uint8Array ? d : undefined);

describe('codec candidates', () => {
  it('offers baseline, main and high at every level from 3.0 to 5.2, as the server writes them', async () => {
    const { AVC_CANDIDATES, mp4Type } = await liveEdge();
    expect(AVC_CANDIDATES).toHaveLength(3 * 8);
    for (const c of AVC_CANDIDATES) expect(c).toMatch(/^avc1\.(42e0|4d40|6400)(1e|1f|28|29|2a|32|33|34)$/);
    expect(AVC_CANDIDATES).toContain('avc1.64001e'); // what libx264 writes for 640×360
    expect(mp4Type('avc1.64001e')).toBe('video/mp4; codecs="avc1.64001e"');
  });

  it('keeps what the browser accepts, and survives a browser that throws', async () => {
    const { supportedCodecs } = await liveEdge();
    const asked: string[] = [];
    const mainOnly = supportedCodecs((t) => {
      asked.push(t);
      if (t.includes('6400')) throw new Error('odd string');
      return t.includes('4d40');
    });
    expect(mainOnly).toHaveLength(8);
    expect(mainOnly.every((c) => c.startsWith('avc1.4d40'))).toBe(true);
    expect(asked[0]).toMatch(/^video\/mp4; codecs="avc1\.[0-9a-f]{6}"$/);
    expect(supportedCodecs(() => false)).toEqual([]);
  });
});

describe('capture clock: media time → capture time', () => {
  it('adds the media time since the fragment with the greatest pts at or before it', async () => {
    const { CaptureClock } = await liveEdge();
    const c = new CaptureClock();
    c.add(10, 1_000_000);
    c.add(10.0667, 1_000_070); // the daemon got this one 3 ms "late": its own ts wins
    c.add(10.1333, 1_000_133);
    expect(c.captureAt(9.99)).toBeUndefined(); // before anything known
    expect(c.captureAt(10)).toBe(1_000_000);
    expect(c.captureAt(10.03)).toBeCloseTo(1_000_030, 6);
    expect(c.captureAt(10.0667)).toBe(1_000_070);
    expect(c.captureAt(10.2)).toBeCloseTo(1_000_133 + 66.7, 6);
  });

  it('forgets everything when media time restarts (a new init segment)', async () => {
    const { CaptureClock } = await liveEdge();
    const c = new CaptureClock();
    c.add(100, 5_000);
    c.add(100.5, 5_500);
    c.add(0.04, 9_000); // ffmpeg restarted
    expect(c.captureAt(100.2)).toBeCloseTo(9_000 + (100.2 - 0.04) * 1000, 6);
    expect(c.pts).toEqual([0.04]);
    expect(c.captureAt(0.01)).toBeUndefined();
  });

  it('stays bounded, keeping the newest fragments', async () => {
    const { CaptureClock } = await liveEdge();
    const c = new CaptureClock(100);
    for (let i = 0; i < 1000; i++) c.add(i / 10, i * 100);
    expect(c.pts.length).toBeLessThanOrEqual(100);
    expect(c.captureAt(99.9)).toBe(99_900);
    expect(c.captureAt(1)).toBeUndefined(); // long gone
    c.add(Number.NaN, 1);
    expect(c.captureAt(99.9)).toBe(99_900);
  });
});

describe('live edge', () => {
  const at = (currentTime: number, end: number, extra: Partial<PlaybackState> = {}): PlaybackState => ({
    currentTime,
    start: end - 2,
    end,
    rate: 1,
    starting: false,
    ...extra,
  });

  it('seeks into the buffer first, then close to the edge once the cached GOP has landed', async () => {
    const { liveEdgeAction, LIVE_EDGE } = await liveEdge();
    // The first fragment (a keyframe) alone: currentTime 0 is outside it.
    expect(liveEdgeAction({ currentTime: 0, start: 50, end: 50.067, rate: 1, starting: true })).toEqual({
      seekTo: 50,
      rate: 1,
    });
    // The whole cached GOP (1.9 s) is in: seek near its end, never play it at speed.
    const act = liveEdgeAction({ currentTime: 50, start: 50, end: 51.9, rate: 1, starting: true });
    expect(act.seekTo).toBeCloseTo(51.9 - LIVE_EDGE.margin, 9);
    expect(act.rate).toBe(1);
    // A lag just over startSeek while starting is seeked over; once live it is caught up by rate.
    const lag = LIVE_EDGE.startSeek + 0.05;
    expect(liveEdgeAction(at(51.9 - lag, 51.9, { starting: true })).seekTo).toBeCloseTo(
      51.9 - LIVE_EDGE.margin,
      9,
    );
    expect(liveEdgeAction(at(51.9 - lag, 51.9)).seekTo).toBeUndefined();
  });

  it('plays faster when behind, in proportion, within 1.05–1.25, until back at the target', async () => {
    const { liveEdgeAction, LIVE_EDGE } = await liveEdge();
    const { target, catchUp, seek, minRate, maxRate } = LIVE_EDGE;
    expect(target).toBeLessThan(catchUp);
    expect(liveEdgeAction(at(10 - target, 10))).toEqual({ rate: 1 }); // at the target: fine
    const small = liveEdgeAction(at(10 - catchUp - 0.05, 10)); // just past catchUp
    expect(small.seekTo).toBeUndefined();
    expect(small.rate).toBeGreaterThanOrEqual(minRate);
    const large = liveEdgeAction(at(10 - seek + 0.05, 10)); // just short of a seek
    expect(large.seekTo).toBeUndefined();
    expect(large.rate).toBeGreaterThan(small.rate);
    expect(large.rate).toBeLessThanOrEqual(maxRate);
    // Hysteresis: between target and catchUp, a rate already up stays up...
    const between = 10 - (target + catchUp) / 2;
    expect(liveEdgeAction(at(between, 10, { rate: 1.1 })).rate).toBeGreaterThan(1);
    // ...but at 1× the same lag does not start it.
    expect(liveEdgeAction(at(between, 10))).toEqual({ rate: 1 });
    // Back at the target: normal speed.
    expect(liveEdgeAction(at(10 - target + 0.01, 10, { rate: 1.1 }))).toEqual({ rate: 1 });
  });

  it('seeks when too far behind, past the edge, or in an older range (a skip left a gap)', async () => {
    const { liveEdgeAction, LIVE_EDGE } = await liveEdge();
    const landing = 20 - LIVE_EDGE.margin;
    expect(liveEdgeAction(at(18, 20)).seekTo).toBeCloseTo(landing, 9); // 2 s behind
    expect(liveEdgeAction(at(30, 20)).seekTo).toBeCloseTo(landing, 9); // far ahead: a stale position
    // The slow viewer was resumed at a keyframe at 19.5: the last range starts there.
    expect(liveEdgeAction({ currentTime: 17.2, start: 19.5, end: 19.6, rate: 1.2, starting: false })).toEqual(
      {
        seekTo: 19.5,
        rate: 1,
      },
    );
  });

  it('trims what is more than 3 s behind, in steps of at least 1 s', async () => {
    const { trimRange } = await liveEdge();
    expect(trimRange(0, 10)).toEqual([0, 7]);
    expect(trimRange(6.5, 10)).toBeUndefined();
    expect(trimRange(6, 10)).toEqual([6, 7]);
    expect(trimRange(0, 2)).toBeUndefined();
  });
});

describe('video records', () => {
  const init = {
    type: 'init',
    topic: 'cam/v/video',
    seq: 0,
    ts: 1,
    codec: 'avc1.64001e',
    width: 640,
    height: 360,
  };
  const frag = { type: 'fragment', topic: 'cam/v/video', seq: 5, ts: 1e12, pts: 2.4, keyframe: true };

  it('reads an init segment and a fragment, and says what is wrong with a bad one', async () => {
    const { readVideoInit, readVideoFragment, MAX_FRAGMENT_BYTES } =
      await load<VideoRecordsModule>('video-records.js');
    const data = new Uint8Array([1, 2, 3]);
    expect(readVideoInit({ ...init, data }, bytes)).toEqual({
      topic: 'cam/v/video',
      codec: 'avc1.64001e',
      width: 640,
      height: 360,
      data,
    });
    expect(readVideoFragment({ ...frag, data, cached: true }, bytes)).toMatchObject({
      seq: 5,
      pts: 2.4,
      cached: true,
    });
    expect(readVideoFragment({ ...frag, data }, bytes)).toMatchObject({ cached: false, keyframe: true });
    const bad: [Record<string, unknown>, RegExp][] = [
      [{ ...init, data, topic: 'cam/v/low' }, /video topic/],
      [{ ...init, data, codec: 'hev1.1.6.L93' }, /avc1/],
      [{ ...init, data, codec: 'avc1.64001e"; x=' }, /avc1/], // it goes into a MIME type
      [{ ...init, data, width: 0 }, /width/],
      [{ ...init }, /without data/],
      [{ ...frag, data, pts: -1 }, /pts/],
      [{ ...frag, data, pts: '2' }, /pts/],
      [{ ...frag, data, seq: 1.5 }, /seq/],
      [{ ...frag, data, keyframe: 1 }, /keyframe/],
      [{ ...frag, data, cached: 'yes' }, /cached/],
      [{ ...frag, data: new Uint8Array(0) }, /without data/],
      [{ ...frag, data: new Uint8Array(MAX_FRAGMENT_BYTES + 1) }, /at most/],
    ];
    for (const [rec, why] of bad) {
      const read = rec.type === 'init' ? readVideoInit : readVideoFragment;
      expect(read(rec, bytes), JSON.stringify(Object.keys(rec))).toMatch(why);
    }
  });

  it('routes init and fragment records, counts bad ones, and leaves every other type to the caller', async () => {
    const { dispatchVideo } = await load<VideoRecordsModule>('video-records.js');
    const got: string[] = [];
    const to = {
      init: () => got.push('init'),
      fragment: () => got.push('fragment'),
      malformed: (kind: string) => got.push(`malformed ${kind}`),
    };
    const data = new Uint8Array([0]);
    expect(dispatchVideo({ ...init, data }, bytes, to)).toBe(true);
    expect(dispatchVideo({ ...frag, data }, bytes, to)).toBe(true);
    expect(dispatchVideo({ ...frag, data: 'AA==' }, bytes, to)).toBe(true); // base64 where bytes belong
    expect(dispatchVideo({ type: 'vad' }, bytes, to)).toBe(false);
    expect(dispatchVideo([1, 2], bytes, to)).toBe(false);
    expect(got).toEqual(['init', 'fragment', 'malformed fragment']);
  });
});

describe('video stats', () => {
  const stats = async () => new (await load<VideoStatsModule>('video-stats.js')).VideoStats(2000);

  it('counts seq jumps as skips, not repeats or a restarted stream', async () => {
    const s = await stats();
    for (const seq of [10, 11, 12, 40, 41, 41, 39]) s.fragment(seq);
    expect(s.skips).toBe(1);
    s.restart(); // a new init: seq may start over
    s.fragment(0);
    s.fragment(1);
    expect(s.skips).toBe(1);
  });

  it('keeps the first picture time, the newest latency, a windowed mean and a drainable log', async () => {
    const s = await stats();
    s.present(1000, undefined, 420); // capture time not known yet: counted, no latency
    s.present(1066, 300, 486);
    s.present(1133, 200, 553);
    expect(s.presented).toBe(3);
    expect(s.firstPictureMs).toBe(420);
    expect(s.latencyMs).toBe(200);
    expect(s.meanLatency(1200)).toBe(250);
    expect(s.meanLatency(3100)).toBe(200); // the 300 ms sample left the 2 s window
    expect(s.meanLatency(9000)).toBeUndefined();
    expect(s.drainLatencies()).toEqual({ latencies: [300, 200], dropped: 0 });
    expect(s.drainLatencies()).toEqual({ latencies: [], dropped: 0 });
  });
});
