import pino from 'pino';
import { afterEach, describe, expect, it, type MockInstance, vi } from 'vitest';
import type { Frame } from '../src/hub/hub.js';
import { Hub } from '../src/hub/hub.js';
import { resumeStreams } from '../src/hub/resume.js';
import { createMetrics, type Metrics } from '../src/metrics/metrics.js';
import { sseFramings } from '../src/server/sse.js';
import type { Backpressure } from '../src/viewers/slow-state.js';
import { SlowState } from '../src/viewers/slow-state.js';
import type { CloseReason, Framing, TransportName, ViewerTransport } from '../src/viewers/transport.js';
import { type ViewerContext, ViewerGroup, type ViewerGroupOptions } from '../src/viewers/viewer-group.js';
import { ViewerSession } from '../src/viewers/viewer-session.js';
import { encode } from '../src/wire/records.js';

/**
 * The viewer core in-process, over a transport that records what it is asked to do. These are
 * the hot-path promises of issue 9, shown by counts (never by time): what is built once per
 * record or per sweep, how often a metric is touched per fan-out, and that an idle viewer's
 * sweep does no work that allocates.
 */

/** A connection that records what its transport was asked to do. */
class RecordingConn {
  readonly written: Uint8Array[] = [];
  corks = 0;
  closedWith: CloseReason | undefined;
  buffered = 0;
  /** A signalled transport refuses writes while this is set. */
  refusing = false;
  /** ...and refuses the write that makes `written` this long. */
  refuseWrite = 0;
}

const recording = (name: TransportName, backpressure: Backpressure): ViewerTransport<RecordingConn> => ({
  name,
  backpressure,
  write: (c, bytes) => {
    c.written.push(bytes);
    return !c.refusing && c.written.length !== c.refuseWrite;
  },
  bufferedAmount: (c) => c.buffered,
  cork: (c, fn) => {
    c.corks++;
    fn();
  },
  close: (c, reason) => {
    c.closedWith = reason;
  },
});

const groups: ViewerGroup<RecordingConn>[] = [];
afterEach(() => {
  for (const g of groups.splice(0)) g.closeAll();
});

/** A group over a fresh hub; `beforeBind` may spy on metrics before the group binds its children. */
function setup(
  transport = recording('sse', 'signalled'),
  opts: Partial<ViewerGroupOptions> = {},
  beforeBind?: (m: Metrics) => void,
) {
  const metrics = createMetrics();
  beforeBind?.(metrics);
  const ctx: ViewerContext = {
    hub: new Hub(new Set(['c1']), metrics),
    metrics,
    log: pino({ level: 'silent' }),
    slow: { softBytes: 1000, videoSoftBytes: 4000, hardBytes: 5000, slowCloseMs: 300 },
    adaptive: { downAfterMs: 200, upAfterMs: 1000 },
    maxTopicsPerConnection: 4,
  };
  // The sweep is driven by hand below: its timer must never fire during a test.
  const group = new ViewerGroup(ctx, transport, { sweepIntervalMs: 3_600_000, ...opts });
  groups.push(group);
  return { ctx, metrics, group };
}

function viewers(group: ViewerGroup<RecordingConn>, framing: Framing, n: number, topics: string[]) {
  return Array.from({ length: n }, () => {
    const session = new ViewerSession(group, new RecordingConn(), framing);
    session.open();
    for (const t of topics) session.add(t, 0);
    return { conn: session.conn, session };
  });
}

const frame = (seq: number): Omit<Frame, 'encodings'> => ({
  topic: 'cam/c1/raw',
  seq,
  ts: 1_700_000_000_000 + seq,
  width: 4,
  height: 4,
  mime: 'image/jpeg',
  data: new Uint8Array([0xff, 0xd8, 0xff, 0xd9]),
  record: new Uint8Array(8),
});

/** A frame of another topic. */
const f = (topic: string, seq: number): Omit<Frame, 'encodings'> => ({ ...frame(seq), topic });

describe('hot path: built once, counted once', () => {
  it('builds an SSE event once, whatever the number of viewers and replays', () => {
    const { ctx, group } = setup();
    ctx.hub.addSink(group);
    const framing = sseFramings(ctx.hub.epoch).inline;
    const vs = viewers(group, framing, 100, ['system']);
    const entry = ctx.hub.publishEvent('system', { type: 'system', kind: 'notice', message: 'hi' });
    const sent = new Set(vs.map((v) => v.conn.written.at(-1)));
    expect(sent.size).toBe(1);
    // A replay of the same event (Last-Event-ID) sends those bytes again, not a new encoding.
    const [late] = viewers(group, framing, 1, []);
    late!.session.replay({ gaps: [], entries: [entry] });
    expect(late!.conn.written.at(-1)).toBe([...sent][0]);
    expect(Buffer.from([...sent][0]!).toString()).toBe(
      `event: system\nid: system:1:${ctx.hub.epoch}\ndata: ${entry.json}\n\n`,
    );
  });

  it('builds the heartbeat once per sweep that sends it, for every viewer', () => {
    const bytes = vi.fn((now: number) => Buffer.from(`: heartbeat ${now}\n\n`));
    const { ctx, group } = setup(undefined, { heartbeat: { everyMs: 1000, bytes } });
    const vs = viewers(group, sseFramings(ctx.hub.epoch).inline, 50, ['system']);
    const built = bytes.mock.calls.length;
    group.sweep(Date.now() + 500);
    expect(bytes.mock.calls.length).toBe(built);
    group.sweep(Date.now() + 1500);
    expect(bytes.mock.calls.length).toBe(built + 1);
    expect(new Set(vs.map((v) => v.conn.written.at(-1))).size).toBe(1);
  });

  it('binds metric children once and counts a fan-out with one increment', () => {
    let frames: MockInstance | undefined;
    let bytes: MockInstance | undefined;
    const { ctx, metrics, group } = setup(recording('mjpeg', 'signalled'), {}, (m) => {
      frames = vi.spyOn(m.framesSent, 'inc');
      bytes = vi.spyOn(m.bytesSent, 'inc');
    });
    ctx.hub.addSink(group);
    const framing: Framing = {
      frame: (f) => f.data,
      event: () => undefined,
      gap: () => undefined,
      variant: () => undefined,
      video: () => undefined,
    };
    viewers(group, framing, 50, ['cam/c1/raw']);
    const labels = vi.spyOn(metrics.framesSent, 'labels');
    frames!.mockClear();
    bytes!.mockClear();
    for (let seq = 1; seq <= 10; seq++) ctx.hub.publishFrame(frame(seq));
    expect(labels).not.toHaveBeenCalled();
    // One increment per published frame, carrying the number of viewers (and bytes) reached.
    expect(frames!.mock.calls.map((c) => c[1])).toEqual(Array(10).fill(50));
    expect(bytes!.mock.calls.map((c) => c[1])).toEqual(Array(10).fill(50 * 4));
  });

  it('sweeps an idle viewer without corking, writing or changing anything', () => {
    const { ctx, group } = setup(recording('ws', 'sampled'));
    const vs = viewers(group, sseFramings(ctx.hub.epoch).inline, 100, ['cam/c1/raw']);
    const written = vs.map((v) => v.conn.written.length);
    for (let i = 1; i <= 50; i++) group.sweep(Date.now() + i * 100);
    // Before issue 9 each tick corked every socket: a closure per viewer per sweep.
    expect(vs.reduce((n, v) => n + v.conn.corks, 0)).toBe(0);
    expect(vs.map((v) => v.conn.written.length)).toEqual(written);
    expect(vs.every((v) => !v.session.slow && !v.session.closed)).toBe(true);
  });
});

describe('one slow/recover/close policy for every transport', () => {
  it('sampled: slow above soft, recovered at soft/2, closed after slowCloseMs over hard', () => {
    const s = new SlowState(
      { softBytes: 1000, videoSoftBytes: 4000, hardBytes: 5000, slowCloseMs: 300 },
      'sampled',
    );
    expect(s.observe(1500, 0)).toBe('slow');
    expect(s.observe(800, 100)).toBeUndefined();
    expect(s.observe(500, 200)).toBe('recovered');
    expect(s.observe(6000, 300)).toBe('slow');
    expect(s.observe(6000, 500)).toBeUndefined();
    expect(s.observe(6000, 600)).toBe('close');
  });

  it('signalled: slow on a refused write, recovered when drained; the hard clock restarts on drain', () => {
    const s = new SlowState(
      { softBytes: 1000, videoSoftBytes: 4000, hardBytes: 5000, slowCloseMs: 300 },
      'signalled',
    );
    expect(s.observe(1_000_000, 0)).toBeUndefined(); // byte counts alone never make it slow
    expect(s.refused()).toBe('slow');
    expect(s.refused()).toBeUndefined();
    expect(s.observe(6000, 100)).toBeUndefined();
    expect(s.drained()).toBe('recovered');
    expect(s.refused()).toBe('slow');
    expect(s.observe(6000, 200)).toBeUndefined();
    expect(s.observe(6000, 600)).toBe('close');
  });

  it('a refused write skips frames (counted once per publish) until drained, then sends the newest, cached', () => {
    let drops: MockInstance | undefined;
    const { ctx, group } = setup(undefined, {}, (m) => {
      drops = vi.spyOn(m.framesDropped, 'inc');
    });
    ctx.hub.addSink(group);
    const framing = sseFramings(ctx.hub.epoch).inline;
    const [v] = viewers(group, framing, 1, ['cam/c1/raw']);
    drops!.mockClear();
    ctx.hub.publishFrame(frame(1));
    v!.conn.refusing = true;
    ctx.hub.publishFrame(frame(2)); // written, refused: the viewer turns slow
    ctx.hub.publishFrame(frame(3));
    ctx.hub.publishFrame(frame(4));
    expect(v!.session.slow).toBe(true);
    expect(v!.conn.written).toHaveLength(2);
    expect(drops!.mock.calls.map((c) => c[1])).toEqual([1, 1]);
    v!.conn.refusing = false;
    v!.session.drained();
    expect(v!.session.slow).toBe(false);
    const last = JSON.parse(Buffer.from(v!.conn.written.at(-1)!).toString().split('data: ')[1]!);
    expect(last).toMatchObject({ seq: 4, cached: true });
  });

  it('refuses the topic over the limit with TOO_MANY_TOPICS, counted', () => {
    const { ctx, group } = setup();
    const [v] = viewers(group, sseFramings(ctx.hub.epoch).inline, 1, ['system', 'cam/c1/raw', 'cam/c1/low']);
    expect(v!.session.add('cam/c1/medium', 0)).toBe('added');
    expect(v!.session.add('cam/c1/high', 0)).toEqual({
      code: 'TOO_MANY_TOPICS',
      message: 'at most 4 topics per connection',
    });
    expect(group.tooManyTopics(5)).toBeDefined();
    expect(group.tooManyTopics(4)).toBeUndefined();
  });
});

describe('counts balance when a write turns a viewer slow in the middle of a topic change', () => {
  const TOPICS = ['cam/c1/medium', 'cam/c1/high', 'cam/c2/medium', 'cam/c2/high'];
  const subscribed = (group: ViewerGroup<RecordingConn>) => TOPICS.map((t) => group.subscribers(t));

  /** After the viewer leaves, nothing is held for it and a publish counts nothing for it. */
  async function expectForgotten(group: ViewerGroup<RecordingConn>, metrics: Metrics, hub: Hub) {
    expect(subscribed(group)).toEqual([0, 0, 0, 0]);
    const sent = async () =>
      (await metrics.framesSent.get()).values.find((v) => v.labels.transport === 'sse');
    const dropped = async () =>
      (await metrics.framesDropped.get()).values.find((v) => v.labels.reason === 'slow');
    const [sent0, dropped0] = [(await sent())?.value ?? 0, (await dropped())?.value ?? 0];
    for (const t of TOPICS) hub.publishFrame(f(t, 9));
    expect((await sent())?.value ?? 0).toBe(sent0);
    expect((await dropped())?.value ?? 0).toBe(dropped0);
  }

  it('two auto topics step up in one sweep and the first cached frame is refused', async () => {
    const { ctx, metrics, group } = setup();
    ctx.hub.addSink(group);
    for (const t of TOPICS) ctx.hub.publishFrame(f(t, 1));
    const s = new ViewerSession(group, new RecordingConn(), sseFramings(ctx.hub.epoch).inline);
    s.open();
    s.add('cam/c1/auto', 0);
    s.add('cam/c2/auto', 0);
    // Both step medium -> high at 1000 ms; the second write of the sweep (c1's cached high frame) is refused.
    s.conn.refuseWrite = s.conn.written.length + 2;
    group.sweep(1100);
    expect(s.slow).toBe(true);
    // Slow: both concrete topics counted as skipped once, neither old one still held.
    expect(subscribed(group)).toEqual([0, 1, 0, 1]);
    s.end('shutdown');
    await expectForgotten(group, metrics, ctx.hub);
  });

  it("an auto topic's variant record is refused", async () => {
    const { ctx, metrics, group } = setup();
    ctx.hub.addSink(group);
    for (const t of TOPICS) ctx.hub.publishFrame(f(t, 1));
    const s = new ViewerSession(group, new RecordingConn(), sseFramings(ctx.hub.epoch).inline);
    s.open();
    s.conn.refuseWrite = 1;
    s.add('cam/c1/auto', 0);
    expect(s.slow).toBe(true);
    expect(group.subscribers('cam/c1/medium')).toBe(1);
    s.drained();
    expect(group.subscribers('cam/c1/medium')).toBe(1);
    s.end('shutdown');
    await expectForgotten(group, metrics, ctx.hub);
  });
});

describe('resume on a topic another node numbers (cluster)', () => {
  const VAD = 'cam/c1/vad';
  /** A cluster node's group: its hub takes events of `VAD` as the bus delivers them from their owner. */
  function clusterSetup(clustered = true) {
    const s = setup();
    s.ctx.hub.clustered = clustered;
    s.ctx.hub.addSink(s.group);
    const remote = (seq: number) => {
      const body = { type: 'vad', topic: VAD, seq, ts: 1, speaking: true };
      s.ctx.hub.publishRemoteEvent(VAD, seq, encode(body), body);
    };
    const framing = sseFramings(s.ctx.hub.epoch).inline;
    /** An SSE viewer of VAD that reconnects with `Last-Event-ID: VAD:<after>:<epoch>`. */
    const resumed = (after: number) => {
      const session = new ViewerSession(s.group, new RecordingConn(), framing);
      session.open();
      session.add(VAD, 0);
      const { hub } = s.ctx;
      const last = { topic: VAD, seq: after, epoch: hub.epoch };
      session.replay(resumeStreams(hub.history, hub.epoch, [VAD], last, (t) => hub.nextSeqUnknown(t)));
      return session;
    };
    return { ...s, remote, resumed };
  }
  const sent = (c: RecordingConn) =>
    c.written.map((b) => {
      const text = Buffer.from(b).toString();
      const data = JSON.parse(text.split('data: ')[1]!) as { seq?: number; after?: number; first?: number };
      return text.startsWith('event: gap') ? `gap ${data.after}->${data.first}` : `${data.seq}`;
    });

  it('the first live event shows what was missed: a gap first, then the event; none when nothing was', () => {
    const { group, remote, resumed } = clusterSetup();
    // Nothing of VAD ever reached this node: the owner is at 56, these clients saw 30 and 56.
    const behind = resumed(30);
    const current = resumed(56);
    expect(behind.conn.written).toEqual([]);
    // Held positions count as receiving the topic: the cluster bus keeps it coming.
    expect(group.subscribers(VAD)).toBe(2);
    remote(57);
    remote(58);
    expect(sent(behind.conn)).toEqual(['gap 30->57', '57', '58']);
    expect(sent(current.conn)).toEqual(['57', '58']);
  });

  it('a topic that never publishes owes no gap; a viewer that leaves holds nothing', () => {
    const { group, remote, resumed } = clusterSetup();
    const gone = resumed(30);
    const staying = resumed(30);
    expect(staying.conn.written).toEqual([]);
    gone.remove(VAD);
    expect(group.subscribers(VAD)).toBe(1);
    staying.end('shutdown');
    expect(group.subscribers(VAD)).toBe(0);
    remote(57);
    expect(gone.conn.written).toEqual([]);
    expect(staying.conn.written).toEqual([]);
  });

  it('a new owner restarts the topic while a position is held: a gap is owed whatever its first seq', () => {
    const { ctx, remote, resumed } = clusterSetup();
    const v = resumed(30);
    ctx.hub.restartTopic(VAD);
    remote(31);
    expect(sent(v.conn)).toEqual(['gap 30->31', '31']);
    expect(JSON.parse(Buffer.from(v.conn.written[0]!).toString().split('data: ')[1]!)).toMatchObject({
      reason: 'epoch',
    });
  });

  it('one node alone: an empty history means nothing was published, and the stream starts live as before', () => {
    const { ctx, group } = clusterSetup(false);
    const v = new ViewerSession(group, new RecordingConn(), sseFramings(ctx.hub.epoch).inline);
    v.open();
    v.add(VAD, 0);
    const last = { topic: VAD, seq: 30, epoch: ctx.hub.epoch };
    const plan = resumeStreams(ctx.hub.history, ctx.hub.epoch, [VAD], last, (t) => ctx.hub.nextSeqUnknown(t));
    expect(plan).toEqual({ gaps: [], entries: [] });
    v.replay(plan);
    ctx.hub.publishEvent(VAD, { type: 'vad', speaking: true });
    expect(sent(v.conn)).toEqual(['1']);
  });
});
