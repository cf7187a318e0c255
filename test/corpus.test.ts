import { readFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { fuzzConfig, LiveDaemon, MAX_RSS_GROWTH_MIB } from './fuzz/live.js';
import { judge, Probe } from './fuzz/probe.js';
import { errorCode, getHead, type RawResponse, rawRequest, rawWsMessages } from './fuzz/raw-http.js';
import { noiseJpeg, pack, unpack, Viewer, wav } from './helpers.js';
import { reliability } from './support/reliability.js';

/**
 * The hostile-input corpus (test/corpus/README.md), one test per input, against one daemon with
 * auth on: broken and polyglot images on /publish; non-media files, playlists and manifests
 * uploaded as audio jobs while a local listener checks that nothing is fetched; slowloris and
 * oversized request heads; path traversal in every path parameter; invalid UTF-8 in topics.
 * After every input the daemon must be up, answer /healthz, stay within 512 MiB of its start
 * RSS, and keep a viewer of another camera supplied with frames.
 */
const rel = reliability('corpus');
const live = new LiveDaemon(fuzzConfig(true));
const corpus = (name: string) => readFileSync(join(import.meta.dirname, 'corpus', name));

/** A local HTTP listener that must never be contacted; it serves a WAV so that a fetch would visibly succeed. */
const canary = { server: http.createServer(), port: 0, connections: 0, requests: [] as string[] };
let publisher: Probe | undefined;
/** The /publish connection, reopened when the daemon closed it. */
async function publisherProbe(): Promise<Probe> {
  if (!publisher || publisher.closed)
    publisher = await Probe.open(`${live.url.replace(/^http/, 'ws')}/publish`, live.publisherToken);
  return publisher;
}
let rawViewer: Viewer;
let jpeg: Buffer;
let png: Buffer;

beforeAll(async () => {
  const tone = new Int16Array(16_000).map((_, i) => Math.round(8000 * Math.sin(i / 5)));
  canary.server.on('connection', () => canary.connections++);
  canary.server.on('request', (req, res) => {
    canary.requests.push(`${req.method} ${req.url}`);
    res.writeHead(200, { 'content-type': 'audio/wav' }).end(wav(tone, 16_000));
  });
  await new Promise<void>((r) => canary.server.listen(0, '127.0.0.1', r));
  canary.port = (canary.server.address() as net.AddressInfo).port;
  jpeg = await noiseJpeg(64, 48);
  png = await sharp(jpeg).png().toBuffer();
  await live.start();
  rawViewer = new Viewer(`${live.daemon.wsUrl}?topics=cam/p1/raw&token=${live.viewerToken}`);
  await rawViewer.opened;
}, 60_000);

afterEach(() => live.ensureUp(), 60_000);
afterAll(async () => {
  publisher?.close();
  rawViewer?.close();
  await live.stop();
  await new Promise((r) => canary.server.close(r));
});

/**
 * Sockets that never finish their request head. They are opened first and judged last, so the
 * whole corpus above runs while they are held: the daemon serves everyone else meanwhile, and
 * uWS must close them on its own (it gives a request head about 10 s; see SECURITY.md).
 */
const slowCls = 'corpus: slowloris (a header byte a second) and stalled heads';
interface Held {
  kind: string;
  openedAt: number;
  closedAfterMs?: number;
  reply: string;
}
const held: Held[] = [];
const sockets: net.Socket[] = [];
// Only the server closing them ends them; this is the last resort if it never does.
afterAll(() => {
  for (const s of sockets) s.destroy();
});

const hold = (kind: string, first: string, dripMs?: number) => {
  const { port } = new URL(live.url);
  const socket = net.connect(Number(port), '127.0.0.1');
  sockets.push(socket);
  const h: Held = { kind, openedAt: Date.now(), reply: '' };
  held.push(h);
  socket.on('error', () => {});
  socket.on('data', (d) => {
    h.reply += d.toString('latin1');
  });
  const drip = dripMs ? setInterval(() => socket.write('a'), dripMs) : undefined;
  socket.on('close', () => {
    clearInterval(drip);
    h.closedAfterMs = Date.now() - h.openedAt;
  });
  socket.write(first);
};

describe('slowloris and stalled request heads (opened first, judged last)', () => {
  it('opens 50 slowloris sockets, a head with 150 headers and one with a control byte; others are still served', async () => {
    for (let i = 0; i < 50; i++) hold('slowloris', 'GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ', 1000);
    const many = Array.from({ length: 150 }, (_, i) => `X-H${i}: v\r\n`).join('');
    hold('150 headers', `GET /healthz HTTP/1.1\r\nHost: x\r\n${many}\r\n`);
    hold('control byte in a header value', 'GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\x12b\r\n\r\n');
    // While they are held: a fresh client, the healthy viewer's frames (in check), and later every input below.
    expect((await rawRequest(live.url, getHead('/healthz'))).status).toBe(200);
    await live.check(rel, slowCls);
  });
});

/** An input answered in a way it must not be; `outcome` is what it got, for the report. */
class WrongAnswer extends Error {
  constructor(
    readonly outcome: string,
    problem: string,
  ) {
    super(`${outcome}: ${problem}`);
  }
}

/** Throws WrongAnswer labelled `outcome` for each problem found. */
function demand(outcome: string, problems: (string | false)[]): string {
  const found = problems.filter((p): p is string => p !== false);
  if (found.length) throw new WrongAnswer(outcome, found.join('; '));
  return outcome;
}

/** Runs one corpus input: records its outcome under `cls`, then the checks every input ends with. */
async function input(cls: string, run: () => Promise<string>): Promise<void> {
  let outcome = 'test error';
  try {
    outcome = await run();
  } catch (err) {
    if (err instanceof WrongAnswer) outcome = `${err.outcome} (WRONG)`;
    // Its memory peak and the daemon's state belong to this input, not to the next one.
    live.note(rel, cls);
    throw err;
  } finally {
    rel.record(cls, live.alive() ? outcome : 'daemon-exit');
  }
  await live.check(rel, cls);
}

const auth = () => ({ Authorization: `Bearer ${live.viewerToken}` });
/** The label of an HTTP answer: `<status> <code>`, or `uWS <status>` for uWS's own refusals. */
const label = (r: RawResponse) =>
  r.status === 0
    ? 'closed without reply'
    : r.headers.uwebsockets === undefined && r.body.includes('uWebSockets')
      ? `uWS ${r.status}`
      : `${r.status} ${errorCode(r) ?? ''}`.trim();

describe('images pushed on /publish', () => {
  const cls = 'corpus: truncated, polyglot and forged images on /publish';
  /** Sends one frame record on /publish; its label is the answer. */
  const send = async (data: Uint8Array, ts: number) => {
    const bytes = pack({ type: 'frame', camera: 'p1', data, ts });
    const verdict = judge(
      await (await publisherProbe()).send(bytes, false),
      bytes,
      new Set(['frame']),
      live.alive(),
    );
    return demand(verdict.outcome, [verdict.problem ?? false]);
  };
  let sentinelTs = Date.now();
  /**
   * Pushes a hostile frame, then good frames until one is relayed on cam/p1/raw. The pool keeps
   * one frame per camera in flight, so by then the hostile one is decoded, refused or dropped,
   * and its memory peak is blamed on it; every raw frame relayed meanwhile must be the real size.
   */
  const push = async (data: Uint8Array) => {
    const outcome = await send(data, Date.now());
    const ts = ++sentinelTs;
    const seen = () => rawViewer.records.some((r) => r.type === 'frame' && r.ts === ts);
    for (let i = 0; i < 150 && !seen(); i++) {
      await send(jpeg, ts);
      await rawViewer.until(seen, 200).catch(() => {});
    }
    const frames = rawViewer.records.filter((r) => r.type === 'frame');
    rawViewer.records.length = 0;
    const wrong = frames.filter((f) => f.width !== 64 || f.height !== 48);
    return demand(outcome, [
      frames.every((f) => f.ts !== ts) && 'no good frame was relayed within 30 s after it',
      wrong.length > 0 && `relayed a raw frame of ${wrong[0]!.width}×${wrong[0]!.height} for a 64×48 source`,
    ]);
  };
  /** The JPEG with its frame header (SOFn) rewritten: marker, height and width. */
  const forged = (base: Buffer, sof: number, width: number, height: number) => {
    const b = Buffer.from(base);
    let at = 2;
    while (!(b[at + 1]! >= 0xc0 && b[at + 1]! <= 0xc3)) at += 2 + b.readUInt16BE(at + 2);
    b[at + 1] = sof;
    b.writeUInt16BE(height, at + 5);
    b.writeUInt16BE(width, at + 7);
    return b;
  };
  /** A ZIP archive holding one stored file: what a JPEG/ZIP polyglot carries after its EOI. */
  const zip = () => {
    const name = Buffer.from('payload.txt');
    const data = Buffer.from('not an image');
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(10, 4);
    local.writeUInt32LE(data.length, 18);
    local.writeUInt32LE(data.length, 22);
    local.writeUInt16LE(name.length, 26);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE(10, 6);
    central.writeUInt32LE(data.length, 20);
    central.writeUInt32LE(data.length, 24);
    central.writeUInt16LE(name.length, 28);
    const end = Buffer.alloc(22);
    end.writeUInt32LE(0x06054b50, 0);
    end.writeUInt16LE(1, 8);
    end.writeUInt16LE(1, 10);
    end.writeUInt32LE(46 + name.length, 12);
    end.writeUInt32LE(30 + name.length + data.length, 16);
    return Buffer.concat([local, name, data, central, name, end]);
  };

  it('a JPEG cut in half', () => input(cls, () => push(jpeg.subarray(0, jpeg.length >> 1))));
  it('a JPEG cut after its first 200 bytes', () => input(cls, () => push(jpeg.subarray(0, 200))));
  it('a PNG cut in half', () => input(cls, () => push(png.subarray(0, png.length >> 1))));
  it('a JPEG followed by a ZIP archive (polyglot)', () =>
    input(cls, () => push(Buffer.concat([jpeg, zip()]))));
  it('a PNG followed by an HTML page (polyglot)', () =>
    input(cls, () => push(Buffer.concat([png, corpus('html-trailer.txt')]))));
  it('a GIF named .jpg', () => input(cls, () => push(corpus('pixel.gif.jpg'))));
  it('a progressive JPEG whose header claims 16383×16383', async () => {
    const progressive = await sharp(jpeg).jpeg({ progressive: true }).toBuffer();
    await input(cls, () => push(forged(progressive, 0xc2, 16383, 16383)));
  });
  it('a baseline JPEG whose header claims 65535×65535', () =>
    input(cls, () => push(forged(jpeg, 0xc0, 65535, 65535))));
});

/** Polls a job until it is done, failed or cancelled. */
async function settled(id: string): Promise<{ state: string; error?: { code: string; message: string } }> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const r = await rawRequest(live.url, getHead(`/api/v1/jobs/${id}`, auth()));
    const job = JSON.parse(r.body.toString()) as { state: string; error?: { code: string; message: string } };
    if (['done', 'failed', 'cancelled'].includes(job.state)) return job;
    if (Date.now() > deadline) throw new Error(`job ${id} still ${job.state} after 30 s`);
    await new Promise((res) => setTimeout(res, 50));
  }
}

/** ffmpeg's own words: what a client must never be shown (it tells a refused port from a missing file). */
const FFMPEG_STDERR =
  /\[[a-z0-9_]+ @ 0x[0-9a-f]+\]|pipe:0|Invalid data found|No such file|Connection refused|Input #0/i;

/** Uploads `body` as an audio job; its label is the refusal, or the job's final state and code. */
async function uploadAudio(body: Buffer): Promise<string> {
  const res = await fetch(`${live.url}/api/v1/jobs/audio`, {
    method: 'POST',
    headers: { authorization: `Bearer ${live.publisherToken}`, 'content-type': 'application/octet-stream' },
    body,
  });
  const json = (await res.json()) as { id?: string; error?: { code: string; message: string } };
  if (res.status !== 202) {
    return demand(`${res.status} ${json.error?.code}`, [
      !(res.status >= 400 && res.status < 500) && `status ${res.status}`,
      !/^[A-Z_]+$/.test(json.error?.code ?? '') && 'no error code',
      FFMPEG_STDERR.test(json.error?.message ?? '') &&
        `ffmpeg's stderr reached the client: ${json.error?.message}`,
    ]);
  }
  const job = await settled(json.id!);
  return demand(`job ${job.state} ${job.error?.code ?? ''}`.trim(), [
    job.state !== 'failed' && `the job ended ${job.state}: ${JSON.stringify(job).slice(0, 300)}`,
    !/^[A-Z_]+$/.test(job.error?.code ?? '') && 'no error code',
    FFMPEG_STDERR.test(job.error?.message ?? '') &&
      `ffmpeg's stderr reached the client: ${job.error?.message}`,
  ]);
}

describe('non-media files uploaded as audio jobs', () => {
  const cls = 'corpus: non-media files with media extensions as audio jobs';
  it('a text file named .mp3', () => input(cls, () => uploadAudio(corpus('notes.txt.mp3'))));
  it("the first 4 KB of /bin/true's ELF binary", () =>
    input(cls, () => uploadAudio(readFileSync('/bin/true').subarray(0, 4096))));
  it('a PDF named .wav', () => input(cls, () => uploadAudio(corpus('document.pdf.wav'))));
  it('text behind an ID3 tag (passes the mp3 sniff)', () =>
    input(cls, () => uploadAudio(Buffer.concat([id3(), corpus('notes.txt.mp3')]))));
  it('a RIFF/WAVE header over noise', () =>
    input(cls, () => {
      const b = Buffer.alloc(4096, 0x5a);
      b.write('RIFF', 0, 'latin1');
      b.write('WAVEjunk', 8, 'latin1');
      return uploadAudio(b);
    }));
});

/** An empty ID3v2.4 tag: ten bytes that make any body pass an mp3 sniff. */
function id3(): Buffer {
  return Buffer.from('ID3\x04\x00\x00\x00\x00\x00\x00', 'latin1');
}

describe('playlists and manifests uploaded as audio jobs fetch nothing', () => {
  const cls = 'corpus: HLS, ffconcat, SDP and DASH (local files, local port) as audio jobs';
  const manifest = (name: string) =>
    Buffer.from(corpus(name).toString().replaceAll('{{PORT}}', String(canary.port)));
  for (const name of ['hls.m3u8', 'concat.ffconcat', 'stream.sdp', 'manifest.mpd', 'local-file.mpd']) {
    for (const behindId3 of [false, true]) {
      it(`${name}${behindId3 ? ' behind an ID3 tag' : ''}`, () =>
        input(cls, async () => {
          const before = canary.connections;
          const body = behindId3 ? Buffer.concat([id3(), manifest(name)]) : manifest(name);
          let outcome: string;
          let wrong: WrongAnswer | undefined;
          try {
            outcome = await uploadAudio(body);
          } catch (err) {
            if (!(err instanceof WrongAnswer)) throw err;
            [outcome, wrong] = [err.outcome, err];
          }
          const fetched = canary.connections - before;
          if (fetched > 0)
            throw new WrongAnswer(`${outcome}, fetched from the local port`, canary.requests.join(', '));
          if (wrong) throw wrong;
          return outcome;
        }));
    }
  }
});

describe('request heads', () => {
  const cls = 'corpus: oversized request heads';
  it('10,000 headers', () =>
    input(cls, async () => {
      const many = Object.fromEntries(Array.from({ length: 10_000 }, (_, i) => [`X-Filler-${i}`, 'v']));
      const r = await rawRequest(live.url, getHead('/healthz', many));
      expect(r.status === 0 || (r.status >= 400 && r.status < 500), label(r)).toBe(true);
      return label(r);
    }));
  for (const kb of [100, 1024]) {
    it(`a ${kb} KB URL`, () =>
      input(cls, async () => {
        const r = await rawRequest(
          live.url,
          getHead(`/sse?topics=cam/demo/${'a'.repeat(kb * 1024)}`, auth()),
        );
        // uWS refuses a request line it cannot hold itself (see SECURITY.md); what reaches us is a 4xx.
        expect(label(r)).toMatch(/^(4\d\d [A-Z_]+|uWS \d+|closed without reply)$/);
        return label(r);
      }));
  }
});

describe('path traversal in every path parameter', () => {
  const cls = 'corpus: path traversal in path parameters and static paths';
  const paths = [
    '/cams/..%2f..%2fetc%2fpasswd/low.jpg',
    '/cams/%2e%2e%2f%2e%2e%2fetc%2fpasswd/low.jpg',
    '/cams/%252e%252e%252fpackage.json/low.jpg',
    '/cams/demo/..%2f..%2f..%2fpackage.json',
    '/cams/demo/%2e%2e%2fpackage.json',
    '/cams/../../etc/passwd',
    '/api/v1/jobs/..%2f..',
    '/api/v1/jobs/..%2f..%2f..%2fpackage.json',
    '/api/v1/jobs/%252e%252e%252f%252e%252e%252fpackage.json',
    '/viewer.js/../../package.json',
    '/vendor/../package.json',
    '/vendor/..%2f..%2fpackage.json',
    '/vendor/msgpackr.js/..%2f..%2f..%2fpackage.json',
    '/js/..%2f..%2f..%2f..%2fpackage.json',
    '/js/../../../../package.json',
    '/viewer/..%2f..%2f..%2fpackage.json',
    '/..%2f..%2f..%2f..%2fetc%2fpasswd',
    '/%2e%2e/%2e%2e/%2e%2e/etc/passwd',
    '/sse?topics=..%2f..%2fetc%2fpasswd',
  ];
  for (const path of paths) {
    it(path, () =>
      input(cls, async () => {
        const r = await rawRequest(live.url, getHead(path, auth()));
        return demand(label(r), [
          /root:x:0:0|"name": "framehub"|"private": true/.test(r.body.toString('latin1')) &&
            'file contents in the body',
          ![400, 404].includes(r.status) && `status ${r.status}`,
          errorCode(r) === undefined && 'no JSON error code',
        ]);
      }),
    );
  }
});

describe('invalid UTF-8 in topics', () => {
  const cls = 'corpus: invalid UTF-8 in topics (raw query bytes, msgpack str)';
  const bad = Buffer.from([0xc0, 0xaf, 0xff, 0xfe, 0xed, 0xa0, 0x80]);
  const target = (prefix: string, suffix = '') =>
    Buffer.concat([Buffer.from(prefix), bad, Buffer.from(suffix)]);

  it('raw bytes in /sse?topics=', () =>
    input(cls, async () => {
      const r = await rawRequest(live.url, getHead(target('/sse?topics=cam/', '/low'), auth()));
      expect(label(r)).toMatch(/^400 BAD_TOPIC$|^404 UNKNOWN_TOPIC$/);
      return label(r);
    }));
  it('raw bytes in /cams/<id>/', () =>
    input(cls, async () => {
      const r = await rawRequest(live.url, getHead(target('/cams/', '/low.jpg'), auth()));
      expect([400, 404]).toContain(r.status);
      return label(r);
    }));
  it('raw bytes in /api/v1/jobs/<id>', () =>
    input(cls, async () => {
      const r = await rawRequest(live.url, getHead(target('/api/v1/jobs/'), auth()));
      expect(label(r)).toBe('404 NOT_FOUND');
      return label(r);
    }));
  it('raw bytes in /ws?topics=', () =>
    input(cls, async () => {
      const r = await rawWsMessages(live.url, target('/ws?topics=cam/', '/low'), auth(), { enough: 1 });
      expect(r.status).toBe(101);
      const first = unpack(r.messages[0]!);
      expect(first.type).toBe('error');
      expect(['BAD_TOPIC', 'UNKNOWN_TOPIC']).toContain(first.code);
      return `error:${first.code}`;
    }));
  it('a msgpack str of invalid UTF-8 in a /ws sub', () =>
    input(cls, async () => {
      const probe = await Probe.open(live.daemon.wsUrl, live.viewerToken);
      const topic = Buffer.concat([
        Buffer.from([0xd9, bad.length + 8]),
        Buffer.from('cam/'),
        bad,
        Buffer.from('/low'),
      ]);
      const sub = Buffer.concat([
        Buffer.from([0x82, 0xa4]),
        Buffer.from('type'),
        Buffer.from([0xa3]),
        Buffer.from('sub'),
        Buffer.from([0xa6]),
        Buffer.from('topics'),
        Buffer.from([0x91]),
        topic,
      ]);
      const verdict = judge(await probe.send(sub, false), sub, new Set(), live.alive());
      probe.close();
      expect(verdict.problem, verdict.outcome).toBeUndefined();
      expect(verdict.outcome).toMatch(/^error:(BAD_TOPIC|UNKNOWN_TOPIC|BAD_MESSAGE)$/);
      return verdict.outcome;
    }));
  it('a msgpack str of invalid UTF-8 as a /publish camera', () =>
    input(cls, async () => {
      const camera = Buffer.concat([Buffer.from([0xa0 | bad.length]), bad]);
      const frame = Buffer.concat([
        Buffer.from([0x82, 0xa4]),
        Buffer.from('type'),
        Buffer.from([0xa5]),
        Buffer.from('frame'),
        Buffer.from([0xa6]),
        Buffer.from('camera'),
        camera,
      ]);
      const verdict = judge(
        await (await publisherProbe()).send(frame, false),
        frame,
        new Set(),
        live.alive(),
      );
      expect(verdict.problem, verdict.outcome).toBeUndefined();
      return verdict.outcome;
    }));
});

describe('slowloris and stalled request heads, judged after the corpus ran beside them', () => {
  it('uWS closed every stalled socket within 30 s, without answering', async () => {
    const deadline = Date.now() + 30_000;
    while (held.some((h) => h.closedAfterMs === undefined) && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 100));
    for (const h of held) {
      const s =
        h.closedAfterMs === undefined
          ? 'still open at 30 s'
          : `closed after ${Math.round(h.closedAfterMs / 1000)} s`;
      rel.record(slowCls, `${h.kind}: ${s}${h.reply ? `, answered ${h.reply.split(' ')[1]}` : ', no reply'}`);
    }
    expect(held.filter((h) => h.closedAfterMs === undefined).map((h) => h.kind)).toEqual([]);
    await live.check(rel, slowCls);
  }, 40_000);
});

describe('memory across the whole corpus', () => {
  it(`stayed within ${MAX_RSS_GROWTH_MIB} MiB of the daemon's start RSS`, () => {
    const growth = live.peakGrowthMiB;
    rel.daemon('corpus: whole run', live.alive(), growth);
    rel.record('corpus: whole run', `${live.restarts} restarts`);
    expect(live.restarts).toBe(0);
    expect(growth).toBeLessThan(MAX_RSS_GROWTH_MIB);
  });
});
