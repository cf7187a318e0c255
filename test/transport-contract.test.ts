import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  get,
  metricValue,
  noiseJpeg,
  pack,
  postNotice,
  type RunningDaemon,
  startDaemon,
  Viewer,
} from './helpers.js';
import { HttpStallable, type Received, type StallableViewer, WsStallable } from './support/stream-clients.js';

/**
 * The promises every viewer transport keeps, run against the real daemon for ws, sse and
 * mjpeg (one suite, one viewer core behind three adapters): the first frame at once, the
 * latest frame for a stalled viewer (its skipped frames counted), events never dropped while
 * connected, a close past the hard limit, `auto` stepping down and back up, and resume.
 * A stalled viewer stops reading its socket; every wait is on observable state (records,
 * /metrics), with wide bounds for a loaded 2-core machine.
 */

const CAMERA = 'c1';
const VIEWERS = {
  softBufferBytes: 256 * 1024,
  hardBufferBytes: 2 * 1024 * 1024,
  slowCloseMs: 1000,
  adaptiveDownMs: 500,
  adaptiveUpMs: 2000,
};
let daemon: RunningDaemon;
let port: number;
let jpeg: Buffer;
let publisher: Viewer;
let pumping: NodeJS.Timeout | undefined;

const publishOne = () =>
  publisher.ws.send(pack({ type: 'frame', camera: CAMERA, ts: Date.now(), data: jpeg }));

/** Publishes the camera's frames at `fps` until stopPublishing(). */
function startPublishing(fps = 15): void {
  pumping ??= setInterval(publishOne, 1000 / fps);
}

function stopPublishing(): void {
  clearInterval(pumping);
  pumping = undefined;
}

const scrape = async () => (await get(`${daemon.url}/metrics`)).text;
const metric = async (series: string) => metricValue(await scrape(), series) ?? 0;

async function waitFor(what: string, pred: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await pred())) {
    if (Date.now() > deadline) throw new Error(`${what}: not reached in ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * The seq of the camera's newest raw frame, once the pool has finished every frame given to
 * it (frames_in counts frames a newer one superseded in the queue, so it is not the seq).
 */
async function settledLatestSeq(): Promise<number> {
  const snapshotSeq = async () =>
    Number((await fetch(`${daemon.url}/cams/${CAMERA}/raw.jpg`)).headers.get('x-seq'));
  let seq = 0;
  await waitFor('the pool drained and the newest frame published', async () => {
    if ((await metric('framehub_pool_queue_depth{priority="live"}')) > 0) return false;
    const before = seq;
    seq = await snapshotSeq();
    return seq > 0 && seq === before;
  });
  return seq;
}

interface TransportCase {
  name: 'ws' | 'sse' | 'mjpeg';
  /** Records carry fields (a frame's `cached`); MJPEG parts have headers only. */
  fields: boolean;
  /** Carries events: never dropped, resumable, and what pushes a stalled viewer over the hard limit. */
  events: boolean;
  open(topics: string[], lastEventId?: string): Promise<StallableViewer>;
}

const transports: TransportCase[] = [
  {
    name: 'ws',
    fields: true,
    events: true,
    async open(topics) {
      const v = new WsStallable(`${daemon.wsUrl}?topics=${topics.join(',')}`);
      await v.opened;
      return v;
    },
  },
  {
    name: 'sse',
    fields: true,
    events: true,
    async open(topics, lastEventId) {
      const headers: Record<string, string> = lastEventId ? { 'Last-Event-ID': lastEventId } : {};
      const v = new HttpStallable(port, `/sse?topics=${topics.join(',')}`, 'sse', headers);
      expect(await v.responded).toBe(200);
      return v;
    },
  },
  {
    name: 'mjpeg',
    fields: false,
    events: false,
    async open(topics) {
      const [topic] = topics.filter((t) => t.startsWith('cam/'));
      const v = new HttpStallable(port, `/cams/${topic!.slice(4)}.mjpeg`, 'mjpeg');
      expect(await v.responded).toBe(200);
      return v;
    },
  },
];

const LADDER = ['low', 'medium', 'high'];
const frames = (r: Received[]) => r.filter((x) => x.kind === 'frame');
const open: StallableViewer[] = [];

beforeAll(async () => {
  jpeg = await noiseJpeg(1280, 720);
  daemon = await startDaemon({ cameras: [{ id: CAMERA, source: 'push', fps: 15 }], viewers: VIEWERS });
  port = Number(new URL(daemon.url).port);
  publisher = new Viewer(`${daemon.url.replace(/^http/, 'ws')}/publish`);
  await publisher.opened;
}, 60_000);

afterAll(async () => {
  stopPublishing();
  publisher?.close();
  await daemon?.stop();
});

describe.each(transports)('transport contract: $name', (t) => {
  const gauge = (name: string) => `${name}{transport="${t.name}"}`;
  const slowViewers = () => metric(gauge('framehub_slow_viewers'));
  const slowDrops = () => metric('framehub_frames_dropped_total{reason="slow"}');

  const connect = async (topics: string[], lastEventId?: string) => {
    const v = await t.open(topics, lastEventId);
    open.push(v);
    return v;
  };

  /** Stalls a viewer and publishes until the daemon counts it slow. */
  const stallUntilSlow = async (v: StallableViewer) => {
    v.stall();
    startPublishing();
    await waitFor(`${t.name} viewer counted slow`, async () => (await slowViewers()) >= 1);
  };

  afterEach(async () => {
    stopPublishing();
    for (const v of open.splice(0)) v.close();
    await waitFor('viewers gone', async () => (await metric(gauge('framehub_connections'))) === 0);
  });

  it('sends the newest frame at once to a new viewer, marked cached', async () => {
    startPublishing();
    await new Promise((r) => setTimeout(r, 300));
    stopPublishing();
    const latest = await settledLatestSeq();
    // Nothing is published from here on: the frame can only come from the cache.
    const v = await connect([`cam/${CAMERA}/raw`]);
    await v.until('first frame', (r) => frames(r).length > 0);
    const first = frames(v.received)[0]!;
    expect(first.seq).toBe(latest);
    if (t.fields) expect(first.cached).toBe(true);
  });

  it('gives a stalled viewer the latest frame when it reads again, with the skipped frames counted', async () => {
    const v = await connect([`cam/${CAMERA}/raw`]);
    await v.until('first frame', (r) => frames(r).length > 0);
    const drops = await slowDrops();
    await stallUntilSlow(v);
    // Ten skipped frames: its socket buffers are full, so it stays slow until it reads.
    await waitFor('frames skipped for it', async () => (await slowDrops()) >= drops + 10);
    stopPublishing();
    await settledLatestSeq();
    // One more frame, skipped too: the newest is one the viewer never got.
    const skipped = await slowDrops();
    publishOne();
    await waitFor('the newest frame skipped', async () => (await slowDrops()) > skipped);
    const latest = await settledLatestSeq();
    const firstSeq = frames(v.received)[0]!.seq!;

    v.resume();
    await v.until('the latest frame', (r) => frames(r).some((f) => f.seq === latest), 30_000);
    const got = frames(v.received);
    expect(got.at(-1)!.seq).toBe(latest);
    if (t.fields) expect(got.at(-1)!.cached).toBe(true);
    expect(got.length).toBeLessThan(latest - firstSeq + 1);
    await waitFor('back to healthy', async () => (await slowViewers()) === 0);
  }, 60_000);

  it.runIf(t.events)(
    'never drops an event while the viewer is connected, however slow',
    async () => {
      const v = await connect([`cam/${CAMERA}/raw`, 'system']);
      await v.until('first frame', (r) => frames(r).length > 0);
      const drops = await slowDrops();
      await stallUntilSlow(v);
      const posted: number[] = [];
      for (let i = 0; i < 30; i++) posted.push(await postNotice(daemon.url, `while slow ${i}`));
      await waitFor('frames skipped meanwhile', async () => (await slowDrops()) > drops);
      stopPublishing();

      v.resume();
      const notices = (r: Received[]) => r.filter((x) => x.kind === 'event' && x.topic === 'system');
      await v.until('every notice', (r) => notices(r).some((e) => e.seq === posted.at(-1)), 30_000);
      const seqs = notices(v.received).map((e) => e.seq);
      for (const seq of posted) expect(seqs).toContain(seq);
      expect(seqs).toEqual([...seqs].sort((a, b) => a! - b!));
    },
    60_000,
  );

  it.runIf(t.events)(
    `closes a viewer held over the hard limit (${t.name === 'ws' ? 'code 4008' : 'the connection is cut'})`,
    async () => {
      const v = await connect([`cam/${CAMERA}/raw`, 'system']);
      await v.until('first frame', (r) => frames(r).length > 0);
      await stallUntilSlow(v);
      stopPublishing();
      const disconnects = await metric(gauge('framehub_slow_disconnects_total'));
      // About 2.6 MB of events (1 KB each) over the 2 MiB hard limit, and under uWS's own cap (2×).
      for (let batch = 0; batch < 24; batch++) {
        await Promise.all(Array.from({ length: 100 }, () => postNotice(daemon.url, 'x'.repeat(1000))));
      }
      await waitFor(
        'closed as slow',
        async () => (await metric(gauge('framehub_slow_disconnects_total'))) > disconnects,
      );
      v.resume();
      const ending = await v.ended;
      if (t.name === 'ws') expect(ending.code).toBe(4008);
      else expect(ending.clean).toBe(false);
    },
    60_000,
  );

  it('steps an auto viewer down while it is slow, and back up once it keeps up', async () => {
    startPublishing();
    const auto = `cam/${CAMERA}/auto`;
    const v = await connect([auto]);
    await v.until('the first frame, medium', (r) =>
      frames(r).some((f) => f.topic === `cam/${CAMERA}/medium`),
    );
    await stallUntilSlow(v);
    // Only a step down can follow while it stays slow.
    const switches = await metric(gauge('framehub_variant_switches_total'));
    await waitFor(
      'a step down',
      async () => (await metric(gauge('framehub_variant_switches_total'))) > switches,
    );
    v.resume();
    // What the viewer was told, in order: variant records, or (MJPEG has none) its frames' topics.
    const levels = (r: Received[]) => {
      const named = t.fields
        ? r.filter((x) => x.kind === 'variant' && x.topic === auto).map((x) => x.variant!)
        : frames(r).map((f) => f.topic.split('/')[2]!);
      return named.map((n) => LADDER.indexOf(n)).filter((l, i, all) => i === 0 || l !== all[i - 1]);
    };
    const downThenUp = (r: Received[]) => {
      const l = levels(r);
      const down = l.findIndex((level, i) => i > 0 && level < l[i - 1]!);
      return down > 0 && l.some((level, i) => i > down && level > l[i - 1]!);
    };
    await v.until('a step down, then a step up once it keeps up', downThenUp, 30_000);
  }, 90_000);

  it.runIf(t.events)(
    'resumes the events missed while disconnected',
    async () => {
      const first = await connect(['system']);
      if (first instanceof WsStallable) {
        first.send({ type: 'hello' });
        await first.until('hello', () => first.hello !== undefined);
      }
      const seen = [await postNotice(daemon.url, 'seen one'), await postNotice(daemon.url, 'seen two')];
      await first.until('notices', (r) => r.some((x) => x.kind === 'event' && x.seq === seen[1]));
      const last = first.received.findLast((x) => x.kind === 'event')!;
      const epoch = first instanceof WsStallable ? first.hello?.epoch : undefined;
      first.close();

      const missed = [await postNotice(daemon.url, 'missed one'), await postNotice(daemon.url, 'missed two')];
      const again = await connect(['system'], last.id);
      if (again instanceof WsStallable) again.send({ type: 'hello', resume: { system: last.seq }, epoch });
      await again.until('the missed notices', (r) =>
        r.some((x) => x.kind === 'event' && x.seq === missed[1]),
      );
      const events = again.received.filter((x) => x.kind === 'event' || x.kind === 'gap');
      expect(events.map((x) => x.seq)).toEqual(missed);
    },
    30_000,
  );
});
