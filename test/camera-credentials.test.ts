import { existsSync, readFileSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage } from 'node:http';
import { createServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { get, type LogLine, type RunningDaemon, startDaemon } from './helpers.js';

/**
 * Finding 10: a camera URL's password must not reach logs, status, or ffmpeg's argv where
 * ffmpeg can take it another way. The camera servers here are stand-ins on 127.0.0.1 that
 * record what ffmpeg sent them.
 */

const SECRET = 's3cret';
const BASIC = `Basic ${Buffer.from(`alice:${SECRET}`).toString('base64')}`;
const DEBIAN_FFMPEG = '/usr/bin/ffmpeg';
const camera = (source: string) => ({ id: 'door', source, fps: 5, width: 320, height: 180 });

let daemon: RunningDaemon | undefined;
const servers: Server[] = [];
const sockets: Socket[] = [];

afterEach(async () => {
  await daemon?.stop();
  daemon = undefined;
  for (const s of sockets.splice(0)) s.destroy();
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

async function listen(server: Server): Promise<number> {
  servers.push(server);
  server.on('connection', (s: Socket) => sockets.push(s));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as { port: number }).port;
}

/** A port with nothing listening: bound, read, released. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((r) => server.close(r));
  return port;
}

async function until<T>(
  probe: () => T | undefined | Promise<T | undefined>,
  what: string,
  ms = 15_000,
): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const statusText = async (d: RunningDaemon) => (await get(`${d.url}/api/v1/status`)).text;
const cameraPid = async (d: RunningDaemon) =>
  (JSON.parse(await statusText(d)) as { cameras: { pid?: number }[] }).cameras[0]?.pid;
const cmdline = (pid: number) => readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
const mentionsSecret = (lines: LogLine[]) => lines.filter((l) => JSON.stringify(l).includes(SECRET));

describe('camera credentials', () => {
  it('rtsp://alice:s3cret@ on a closed port: restarts are logged with the URL redacted, never the password', async () => {
    const port = await closedPort();
    daemon = await startDaemon({ cameras: [camera(`rtsp://alice:${SECRET}@127.0.0.1:${port}/x`)] });
    const d = daemon;
    const exits = () => d.logs.filter((l) => l.msg === 'camera ffmpeg exited');
    await until(() => (exits().length >= 3 ? true : undefined), 'three failed starts');

    expect(mentionsSecret(d.logs)).toEqual([]);
    const status = await statusText(d);
    expect(status).toContain('"restarts"');
    expect(status).not.toContain(SECRET);
    expect((await get(`${d.url}/metrics`)).text).not.toContain(SECRET);
    // The failures are still logged, with the URL the operator needs, redacted.
    const redacted = `rtsp://alice:***@127.0.0.1:${port}/x`;
    for (const exit of exits()) {
      expect(exit.source).toBe(redacted);
      // ffmpeg's own complaint names the URL: it comes through, redacted.
      expect((exit.stderr as string[]).some((line) => line.includes(`${redacted}: Connection refused`))).toBe(
        true,
      );
    }
  });

  it('http(s) with credentials: the camera gets them, /proc/<pid>/cmdline does not show them', async () => {
    const seen: (string | undefined)[] = [];
    const held: IncomingMessage[] = [];
    // Asks for Basic auth, then holds the authorised request open so ffmpeg stays alive to be inspected.
    const server = createHttpServer((req, res) => {
      seen.push(req.headers.authorization);
      if (!req.headers.authorization) {
        res.writeHead(401, { 'WWW-Authenticate': 'Basic realm="cam"' }).end();
        return;
      }
      held.push(req);
    });
    const port = await listen(server);
    daemon = await startDaemon({ cameras: [camera(`http://alice:${SECRET}@127.0.0.1:${port}/video.mjpg`)] });
    const d = daemon;

    await until(() => (seen.includes(BASIC) ? true : undefined), 'an authorised request');
    const pid = await until(() => cameraPid(d), 'the ffmpeg pid');
    expect(cmdline(pid)).not.toContain(SECRET);
    expect(cmdline(pid)).toContain('-filter_complex_script pipe:4');
    expect(await statusText(d)).not.toContain(SECRET);
    expect(mentionsSecret(d.logs)).toEqual([]);
  });

  it.skipIf(!existsSync(DEBIAN_FFMPEG))(
    'rtsp with an ffmpeg that has movie format_opts (5.1+): credentials out of argv, still TCP',
    async () => {
      const requests: { method: string; authorization?: string; transport?: string }[] = [];
      const port = await listen(fakeRtspServer(requests));
      daemon = await startDaemon({
        ffmpegPath: DEBIAN_FFMPEG,
        cameras: [camera(`rtsp://alice:${SECRET}@127.0.0.1:${port}/x`)],
      });
      const d = daemon;

      const setup = await until(() => requests.find((r) => r.method === 'SETUP'), 'an RTSP SETUP');
      expect(setup.transport).toMatch(/^RTP\/AVP\/TCP/);
      expect(setup.authorization).toBe(BASIC);
      const pid = await until(() => cameraPid(d), 'the ffmpeg pid');
      expect(cmdline(pid)).not.toContain(SECRET);
      expect(d.logs.some((l) => String(l.msg).includes('command line'))).toBe(false);
      expect(mentionsSecret(d.logs)).toEqual([]);
    },
  );
});

/**
 * Just enough RTSP to get ffmpeg to SETUP: OPTIONS, DESCRIBE (401 with a Basic challenge until
 * it authenticates, then an SDP with one MJPEG track), SETUP and PLAY; then it sends no media.
 */
function fakeRtspServer(requests: { method: string; authorization?: string; transport?: string }[]): Server {
  return createServer((socket) => {
    let buffered = '';
    socket.on('error', () => socket.destroy());
    socket.on('data', (chunk) => {
      buffered += chunk.toString('latin1');
      for (let end = buffered.indexOf('\r\n\r\n'); end >= 0; end = buffered.indexOf('\r\n\r\n')) {
        const head = buffered.slice(0, end);
        buffered = buffered.slice(end + 4);
        const header = (name: string) => new RegExp(`^${name}: *(.*)$`, 'im').exec(head)?.[1];
        const [method = '', url = ''] = head.split(' ');
        const authorization = header('authorization');
        const transport = header('transport');
        requests.push({ method, authorization, transport });
        const reply = (status: string, extra = '', body = '') =>
          socket.write(`RTSP/1.0 ${status}\r\nCSeq: ${header('cseq')}\r\n${extra}\r\n${body}`);
        if (method === 'DESCRIBE' && authorization !== BASIC) {
          reply('401 Unauthorized', 'WWW-Authenticate: Basic realm="cam"\r\n');
        } else if (method === 'DESCRIBE') {
          const sdp =
            'v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=cam\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\nm=video 0 RTP/AVP 26\r\na=control:track1\r\n';
          reply(
            '200 OK',
            `Content-Base: ${url}/\r\nContent-Type: application/sdp\r\nContent-Length: ${sdp.length}\r\n`,
            sdp,
          );
        } else if (method === 'SETUP') {
          reply('200 OK', `Session: 1\r\nTransport: ${transport ?? ''}\r\n`);
        } else {
          reply(
            '200 OK',
            method === 'OPTIONS' ? 'Public: DESCRIBE, SETUP, PLAY, TEARDOWN\r\n' : 'Session: 1\r\n',
          );
        }
      }
    });
  });
}
