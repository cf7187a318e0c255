import { EventSource } from 'eventsource';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  get,
  postNotice,
  type RunningDaemon,
  readMjpeg,
  SseReader,
  startDaemon,
  testCamera,
} from './helpers.js';

let daemon: RunningDaemon;

beforeAll(async () => {
  daemon = await startDaemon({
    cameras: [testCamera('demo', 15), { id: 'pushcam', source: 'push' }],
  });
});
afterAll(async () => {
  await daemon?.stop();
});

describe('SSE', () => {
  it('streams frames as base64 JSON, with topic and seq in the data and no id', async () => {
    const sse = new SseReader(`${daemon.url}/sse?topics=cam/demo/low`);
    const res = await sse.response;
    expect(res.headers.get('content-type')).toBe('text/event-stream');
    await sse.until(() => sse.of('frame').length >= 3);
    sse.close();
    const frames = sse.of('frame');
    for (const f of frames) {
      const body = JSON.parse(f.data);
      expect(body).toMatchObject({ topic: 'cam/demo/low', seq: expect.any(Number) });
      expect(f.id).toBeUndefined();
      const meta = await sharp(Buffer.from(body.data, 'base64')).metadata();
      expect(meta.width).toBe(320);
    }
  });

  it('resumes exactly from the last id a client saw on a stream that mixes frames and events', async () => {
    const first = new SseReader(`${daemon.url}/sse?topics=system,cam/demo/low&frames=ref`);
    await first.response;
    const seen = await postNotice(daemon.url, 'mixed one');
    // Frames keep coming after the notice; a spec client keeps the last id field it got.
    await first.until(() => first.events.findIndex((e) => e.event === 'system') < first.events.length - 3);
    first.close();
    const lastSeenId = first.events.filter((e) => e.id !== undefined).at(-1)!.id!;
    expect(lastSeenId).toMatch(new RegExp(`^system:${seen}:[0-9a-z]{8}$`));

    const missed = [await postNotice(daemon.url, 'mixed two'), await postNotice(daemon.url, 'mixed three')];
    const again = new SseReader(`${daemon.url}/sse?topics=system,cam/demo/low&frames=ref`, {
      'Last-Event-ID': lastSeenId,
    });
    await again.until(() => again.of('system').length >= 2 && again.of('frame').length >= 1);
    await new Promise((r) => setTimeout(r, 300));
    expect(again.of('system').map((e) => JSON.parse(e.data).seq)).toEqual(missed);
    again.close();
  });

  it('gives snapshot URLs with frames=ref', async () => {
    const sse = new SseReader(`${daemon.url}/sse?topics=cam/demo/medium&frames=ref`);
    await sse.until(() => sse.of('frame').length >= 1);
    sse.close();
    const body = JSON.parse(sse.of('frame')[0]!.data);
    expect(body.data).toBeUndefined();
    expect(body.url).toBe('/cams/demo/medium.jpg');
    expect((await get(`${daemon.url}${body.url}`)).status).toBe(200);
  });

  it('replays exactly the missed events after Last-Event-ID, in order, with no duplicates, and frames resume at the latest', async () => {
    const first = new SseReader(`${daemon.url}/sse?topics=system,cam/demo/low`);
    await first.response;
    const seen = [await postNotice(daemon.url, 'one'), await postNotice(daemon.url, 'two')];
    await first.until(() => first.of('system').length >= 2);
    first.close();
    const lastId = first.of('system').at(-1)!.id!;
    // <topic>:<seq>:<epoch> (README "SSE").
    expect(lastId).toMatch(new RegExp(`^system:${seen[1]}:[0-9a-z]{8}$`));
    const epoch = lastId.split(':')[2];

    const missed = [
      await postNotice(daemon.url, 'three'),
      await postNotice(daemon.url, 'four'),
      await postNotice(daemon.url, 'five'),
    ];
    const again = new SseReader(`${daemon.url}/sse?topics=system,cam/demo/low`, { 'Last-Event-ID': lastId });
    await again.until(() => again.of('system').length >= 3 && again.of('frame').length >= 1);
    await new Promise((r) => setTimeout(r, 300));
    const seqs = again.of('system').map((e) => JSON.parse(e.data).seq);
    expect(seqs).toEqual(missed);
    expect(again.of('system').map((e) => JSON.parse(e.data).message)).toEqual(['three', 'four', 'five']);
    const frame = JSON.parse(again.of('frame')[0]!.data);
    expect(Date.now() - frame.ts).toBeLessThan(3000);

    // The same through the lastEventId query parameter (EventSource cannot set headers on a first connect).
    const viaQuery = new SseReader(
      `${daemon.url}/sse?topics=system&lastEventId=${encodeURIComponent(lastId)}`,
    );
    await viaQuery.until(() => viaQuery.of('system').length >= 3);
    expect(viaQuery.of('system').map((e) => e.id)).toEqual(missed.map((s) => `system:${s}:${epoch}`));
    again.close();
    viaQuery.close();
  });

  it('works end to end with a spec-compliant client (eventsource)', async () => {
    const es = new EventSource(`${daemon.url}/sse?topics=cam/demo/low,system`);
    const got = { frames: 0, notices: [] as string[] };
    es.addEventListener('frame', () => got.frames++);
    es.addEventListener('system', (e) => got.notices.push(JSON.parse(e.data).message));
    await new Promise<void>((res, rej) => {
      es.onopen = () => res();
      es.onerror = (e) => rej(new Error(String(e.message)));
    });
    await postNotice(daemon.url, 'hello eventsource');
    const deadline = Date.now() + 5000;
    while ((got.frames < 3 || !got.notices.includes('hello eventsource')) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
    }
    es.close();
    expect(got.frames).toBeGreaterThanOrEqual(3);
    expect(got.notices).toContain('hello eventsource');
  });

  it('sends a heartbeat comment within 15 s', async () => {
    const sse = new SseReader(`${daemon.url}/sse?topics=system`);
    await sse.response;
    await sse.until(() => sse.comments.some((c) => c.startsWith(': heartbeat')), 15_500);
    sse.close();
  }, 20_000);

  it('refuses bad topics with a code and status', async () => {
    const cases: [string, number, string][] = [
      ['/sse', 400, 'BAD_TOPIC'],
      ['/sse?topics=cam/../x', 400, 'BAD_TOPIC'],
      ['/sse?topics=cam/ghost/low', 404, 'UNKNOWN_TOPIC'],
      ['/sse?topics=cam/demo/ultra', 400, 'BAD_TOPIC'],
    ];
    for (const [path, status, code] of cases) {
      const res = await get(`${daemon.url}${path}`);
      expect(res.status, path).toBe(status);
      expect(JSON.parse(res.text).error.code, path).toBe(code);
    }
  });
});

describe('MJPEG', () => {
  it('streams multipart JPEGs that decode, with increasing X-Seq', async () => {
    const parts = await readMjpeg(`${daemon.url}/cams/demo/low.mjpeg`, 6);
    expect(parts.length).toBeGreaterThanOrEqual(5);
    for (const p of parts) {
      const meta = await sharp(p.jpeg).metadata();
      expect(meta.format).toBe('jpeg');
      expect(meta.width).toBe(320);
    }
    const seqs = parts.map((p) => Number(p.headers['X-Seq']));
    for (let i = 1; i < seqs.length; i++) expect(seqs[i]).toBeGreaterThan(seqs[i - 1]!);
  });

  it('serves the latest frame as .jpg with ETag and Last-Modified, and 304 when unchanged', async () => {
    const first = await fetch(`${daemon.url}/cams/demo/raw.jpg`);
    expect(first.status).toBe(200);
    expect(first.headers.get('content-type')).toBe('image/jpeg');
    const etag = first.headers.get('etag')!;
    const lastModified = first.headers.get('last-modified')!;
    expect(etag).toMatch(/^"\d+-\d+"$/);
    expect((await sharp(Buffer.from(await first.arrayBuffer())).metadata()).width).toBe(640);

    const same = await fetch(`${daemon.url}/cams/demo/raw.jpg`, { headers: { 'if-none-match': etag } });
    // The camera runs at 15 fps: either the frame is unchanged (304), or a newer one came (200, new ETag).
    if (same.status === 200) expect(same.headers.get('etag')).not.toBe(etag);
    else expect(same.status).toBe(304);
    // If-None-Match compares weakly: a W/ prefix (as some proxies add) still matches.
    const weak = await fetch(`${daemon.url}/cams/demo/raw.jpg`, {
      headers: { 'if-none-match': `W/${etag}` },
    });
    if (weak.status === 200) expect(weak.headers.get('etag')).not.toBe(etag);
    else expect(weak.status).toBe(304);

    const stale = await fetch(`${daemon.url}/cams/demo/raw.jpg`, { headers: { 'if-none-match': '"0-0"' } });
    expect(stale.status).toBe(200);
    const notModified = await fetch(`${daemon.url}/cams/demo/raw.jpg`, { headers: { 'if-none-match': '*' } });
    expect(notModified.status).toBe(304);
    expect(await notModified.text()).toBe('');
    const ims = await fetch(`${daemon.url}/cams/demo/raw.jpg`, {
      headers: { 'if-modified-since': new Date(Date.parse(lastModified) + 3_600_000).toUTCString() },
    });
    expect(ims.status).toBe(304);
  });

  it('answers snapshot and stream errors with codes', async () => {
    const cases: [string, number, string][] = [
      ['/cams/pushcam/raw.jpg', 503, 'NO_FRAME_YET'],
      ['/cams/ghost/raw.jpg', 404, 'UNKNOWN_TOPIC'],
      ['/cams/demo/ultra.mjpeg', 400, 'BAD_TOPIC'],
      ['/cams/demo/auto.jpg', 400, 'BAD_TOPIC'],
      ['/cams/demo/raw.gif', 404, 'NOT_FOUND'],
      ['/cams/demo/vad.jpg', 400, 'BAD_TOPIC'],
      ['/cams/demo/vad.mjpeg', 400, 'BAD_TOPIC'],
    ];
    for (const [path, status, code] of cases) {
      const res = await get(`${daemon.url}${path}`);
      expect(res.status, path).toBe(status);
      expect(JSON.parse(res.text).error.code, path).toBe(code);
    }
    expect((await get(`${daemon.url}/cams/pushcam/raw.jpg`)).headers.get('retry-after')).toBe('1');
  });
});

describe('notices (admin API)', () => {
  it('rejects bad bodies with codes', async () => {
    const post = (body: string, type = 'application/json') =>
      fetch(`${daemon.url}/api/v1/notices`, { method: 'POST', headers: { 'content-type': type }, body });
    const cases: [Promise<Response>, number, string][] = [
      [post('{"message":'), 400, 'BAD_REQUEST'],
      [post('{"message":42}'), 422, 'INVALID_FIELD'],
      [post('{"message":""}'), 422, 'INVALID_FIELD'],
      [post('message=hi', 'application/x-www-form-urlencoded'), 415, 'UNSUPPORTED_MEDIA_TYPE'],
      [post(JSON.stringify({ message: 'x'.repeat(20_000) })), 413, 'TOO_LARGE'],
    ];
    for (const [pending, status, code] of cases) {
      const res = await pending;
      expect(res.status).toBe(status);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe(code);
    }
  });
});

describe('SSE backpressure', () => {
  let big: RunningDaemon;
  beforeAll(async () => {
    big = await startDaemon({
      cameras: [testCamera('demo', 5)],
      viewers: { historyPerTopic: 12_000, sseHeartbeatSeconds: 120 },
    });
  });
  afterAll(async () => {
    await big?.stop();
  });

  it('delivers a 12 MB replay on an events-only stream as fast as the client reads, not one buffer per heartbeat', async () => {
    const message = 'x'.repeat(1000);
    for (let sent = 0; sent < 12_000; sent += 100) {
      await Promise.all(Array.from({ length: 100 }, () => postNotice(big.url, message)));
    }
    const started = Date.now();
    // From seq 100, well inside the history (the camera's own system events take seqs too).
    const sse = new SseReader(`${big.url}/sse?topics=system`, { 'Last-Event-ID': 'system:100' });
    // Before the fix uWS held the rest of its buffer until the next heartbeat (120 s here).
    const last = () => Number(sse.of('system').at(-1)?.id?.split(':')[1] ?? 0);
    await sse.until(() => last() >= 12_000, 20_000);
    sse.close();
    const seqs = sse.of('system').map((e) => Number(e.id!.split(':')[1]));
    expect(seqs[0]).toBe(101);
    expect(seqs.every((seq, i) => i === 0 || seq === seqs[i - 1]! + 1)).toBe(true);
    expect(Date.now() - started).toBeLessThan(20_000);
  }, 60_000);
});
