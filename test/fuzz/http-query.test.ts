import fc from 'fast-check';
import { afterAll, afterEach, beforeAll, describe, it } from 'vitest';
import { pack } from '../helpers.js';
import { reliability } from '../support/reliability.js';
import { fileBudget } from './budget.js';
import { topicLike } from './hostile-msgpack.js';
import { fuzzConfig, LiveDaemon } from './live.js';
import { judge, Probe } from './probe.js';
import { errorCode, getHead, type RawResponse, rawRequest } from './raw-http.js';

/**
 * Query strings and path parameters from the request line on: `/sse?topics=` (with random
 * `Last-Event-ID`), `/cams/<id>/<file>`, `/ws?topics=` and `/api/v1/jobs/<id>`, with
 * percent-encoded arbitrary bytes (invalid UTF-8 included), raw bytes above 0x7F, and
 * topic-shaped lists. Each must be answered 200 (or 304) or 4xx with a JSON error code,
 * never 5xx (503 NO_FRAME_YET aside, which is documented), never a crash.
 */
const rel = reliability('fuzz-http');
const budget = fileBudget(4);
const CASES = 1000;
const live = new LiveDaemon(fuzzConfig(true));
/** Requests between the daemon checks of a target. */
const CHECK_EVERY = 250;

beforeAll(() => live.start(), 60_000);
afterAll(() => live.stop());
afterEach(() => live.ensureUp(), 60_000);

/** Characters with meaning in a query or path, and bytes that are not ASCII. */
const queryByte = fc.oneof(
  fc.constantFrom(..."%&=,/?#;+.:~-_@!$'()*[]".split('').map((c) => c.charCodeAt(0))),
  fc.integer({ min: 0x21, max: 0x7e }),
  fc.integer({ min: 0x80, max: 0xff }),
);
/** One query or path value as raw bytes: percent-encoded anything, raw bytes, or topic-shaped. */
const component = fc.oneof(
  fc
    .uint8Array({ maxLength: 60 })
    .map((b) => Buffer.from([...b].map((x) => `%${x.toString(16).padStart(2, '0')}`).join(''))),
  fc.array(queryByte, { maxLength: 80 }).map((b) => Buffer.from(b)),
  fc.array(topicLike, { maxLength: 80 }).map((ts) => Buffer.from(ts.map(encodeURIComponent).join(','))),
  fc
    .constantFrom(
      '..%2f..%2fetc%2fpasswd',
      '%252e%252e%252f',
      '%c0%ae%c0%ae',
      '%00',
      '%ff%fe',
      '%',
      '%zz',
      '%%',
      'cam/demo/low,,,',
    )
    .map((s) => Buffer.from(s)),
);
const join = (...parts: (Buffer | string)[]) =>
  Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p) : p)));

interface HttpVerdict {
  outcome: string;
  problem?: string;
}

/** 200/304, a JSON 4xx with a code, 503 NO_FRAME_YET, or uWS's own refusal of a malformed request line. */
function judgeHttp(r: RawResponse, allow200: (r: RawResponse) => boolean): HttpVerdict {
  if (!live.alive()) return { outcome: 'daemon-exit', problem: 'the daemon exited' };
  if (r.timedOut) return { outcome: 'no answer', problem: 'no response in 10 s' };
  if (r.status === 0)
    return { outcome: 'closed without reply', problem: 'the connection closed without a status line' };
  // uWS answers a request line it cannot parse itself, with HTML and without the header it adds to ours.
  if (r.headers.uwebsockets === undefined && r.body.includes('uWebSockets'))
    return { outcome: `uWS ${r.status}` };
  if (r.status === 200 || r.status === 304) {
    return allow200(r)
      ? { outcome: String(r.status) }
      : { outcome: `${r.status}`, problem: `unexpected ${r.status}` };
  }
  const code = errorCode(r);
  if (r.status >= 400 && r.status < 500 && code) return { outcome: `${r.status} ${code}` };
  if (r.status === 503 && code === 'NO_FRAME_YET') return { outcome: `503 ${code}` };
  return {
    outcome: `${r.status} ${code ?? 'no code'}`,
    problem: `status ${r.status}: ${r.body.toString().slice(0, 200)}`,
  };
}

/** A target that sends one raw GET per case and judges the response. */
async function fuzzHttp(
  cls: string,
  target: fc.Arbitrary<{ path: Buffer; headers?: Record<string, string> }>,
  allow200: (r: RawResponse) => boolean,
  params: fc.Parameters<unknown>,
): Promise<void> {
  let n = 0;
  await noting(cls, () =>
    fc.assert(
      fc.asyncProperty(
        target.map((t) =>
          Object.assign(t, {
            [fc.toStringMethod]: () => JSON.stringify([t.path.toString('latin1'), t.headers]),
          }),
        ),
        async ({ path, headers }) => {
          const r = await rawRequest(
            live.url,
            getHead(path, { Authorization: `Bearer ${live.viewerToken}`, ...headers }),
          );
          const v = judgeHttp(r, allow200);
          rel.record(cls, v.problem ? `${v.outcome} (WRONG)` : v.outcome);
          if (v.problem)
            throw new Error(
              `${v.problem}\n  request target (latin1): ${JSON.stringify(path.toString('latin1'))}`,
            );
          if (++n % CHECK_EVERY === 0) await live.check(rel, cls);
        },
      ),
      params,
    ),
  );
  await live.check(rel, cls);
}

/** Runs a target; when it fails, the daemon's state and memory peak still go into the report. */
async function noting(cls: string, run: () => Promise<void>): Promise<void> {
  try {
    await run();
  } catch (err) {
    live.note(rel, cls);
    throw err;
  }
}

/**
 * Header values without control bytes: uWS itself never answers a request with one (it holds
 * the socket until its idle timeout; the corpus measures that), so they would test uWS, not us.
 */
const noControls = (s: string) =>
  [...s].filter((c) => c === '\t' || (c.codePointAt(0) ?? 0) >= 0x20).join('');
const lastEventId = fc.oneof(
  fc.constant(undefined),
  fc.string({ maxLength: 60 }).map(noControls),
  fc.tuple(topicLike, fc.integer()).map(([t, s]) => noControls(`${t}:${s}`)),
);

describe('HTTP query and path parsing (auth on, viewer token)', () => {
  it(
    '/sse?topics=… with random values, extra parameters and Last-Event-ID',
    () =>
      fuzzHttp(
        '/sse?topics=: random query strings and Last-Event-ID',
        fc
          .tuple(component, fc.option(component), fc.option(component), lastEventId)
          .map(([topics, frames, resume, header]) => ({
            path: join(
              '/sse?topics=',
              topics,
              frames ? join('&frames=', frames) : '',
              resume ? join('&lastEventId=', resume) : '',
            ),
            headers: header === undefined ? {} : ({ 'Last-Event-ID': header } as Record<string, string>),
          })),
        (r) => r.status === 200 && r.headers['content-type'] === 'text/event-stream',
        budget.params(0, 0x55e, CASES),
      ),
    budget.timeoutMs,
  );

  it(
    '/cams/<id>/<file> with random camera ids and file names',
    () =>
      fuzzHttp(
        '/cams/<id>/<variant>.jpg|.mjpeg: random path segments',
        fc
          .tuple(
            // Not the push camera: an MJPEG stream sends its head with its first frame, and p1 has none.
            fc.oneof(fc.constant(Buffer.from('demo')), component),
            fc.oneof(
              fc
                .tuple(
                  fc.constantFrom('raw', 'low', 'medium', 'high', 'annotated', 'auto', 'vad', 'x'),
                  fc.constantFrom('.jpg', '.mjpeg', '.png', ''),
                )
                .map(([v, e]) => Buffer.from(v + e)),
              component,
            ),
          )
          .map(([id, file]) => ({ path: join('/cams/', id, '/', file) })),
        (r) =>
          r.status === 304 ||
          ['image/jpeg', 'multipart/x-mixed-replace; boundary=framehubframe'].includes(
            r.headers['content-type']!,
          ),
        budget.params(1, 0xca5, CASES),
      ),
    budget.timeoutMs,
  );

  it(
    '/api/v1/jobs/<id> with random ids',
    () =>
      fuzzHttp(
        '/api/v1/jobs/<id>: random ids',
        fc
          .tuple(component, fc.option(component))
          .map(([id, q]) => ({ path: join('/api/v1/jobs/', id, q ? join('?', q) : '') })),
        () => false,
        budget.params(2, 0x10b, CASES),
      ),
    budget.timeoutMs,
  );

  it(
    '/ws?topics=… with random values: errors with codes on the open socket, or a documented close',
    async () => {
      const cls = '/ws?topics=: random query strings';
      let n = 0;
      await noting(cls, () =>
        fc.assert(
          fc.asyncProperty(component, async (topics) => {
            // Percent-encoded or raw, the bytes go on the URL as they are (latin1 keeps each byte).
            const url = `${live.daemon.wsUrl}?topics=${topics.toString('latin1')}`;
            let probe: Probe;
            try {
              probe = await Probe.open(url, live.viewerToken);
            } catch {
              // The client library refuses a few URLs outright; nothing reached the daemon.
              rel.record(cls, 'not sendable');
              return;
            }
            const ping = pack({ type: 'ping', id: 'q' });
            const r = await probe.send(ping, false);
            probe.close();
            // Errors for the query's topics come at open, before the pong; a pong alone means all were taken.
            const v = judge(r, ping, new Set(), live.alive());
            rel.record(cls, v.problem ? `${v.outcome} (WRONG)` : v.outcome);
            if (v.problem)
              throw new Error(`${v.problem} for /ws?topics=${JSON.stringify(topics.toString('latin1'))}`);
            if (++n % CHECK_EVERY === 0) await live.check(rel, cls);
          }),
          budget.params(3, 0x3e5e, CASES),
        ),
      );
      await live.check(rel, cls);
    },
    budget.timeoutMs,
  );
});
