import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { ConfigError } from '../../src/errors.js';
import { Hub } from '../../src/hub/hub.js';
import { parseTopic } from '../../src/hub/topics.js';
import { createMetrics } from '../../src/metrics/metrics.js';
import { parseLastEventId } from '../../src/server/last-event-id.js';
import { reliability } from '../support/reliability.js';
import { fileBudget } from './budget.js';
import { hostileValue, topicLike } from './hostile-msgpack.js';

/**
 * The text parsers that take client or operator input, in-process: topic names, the hub's
 * topic check (which sees whatever a client's msgpack decoded to), SSE resume positions, and
 * the config loader. Each must answer (a value, undefined, or its documented error) for any
 * input and never throw anything else.
 */
const rel = reliability('fuzz-parsers');
const budget = fileBudget(5);
const CASES = 2000;

/** Runs `fn`, recording its outcome label, or "threw <name>" before rethrowing. */
function recorded<T>(cls: string, fn: () => T, label: (r: T) => string): T {
  try {
    const r = fn();
    rel.record(cls, label(r));
    return r;
  } catch (err) {
    rel.record(cls, `threw ${(err as Error)?.constructor?.name ?? typeof err} (WRONG)`);
    throw err;
  }
}

/** Anything a client can put where a topic goes, strings of every kind included. */
const topicInput: fc.Arbitrary<unknown> = fc.oneof(
  topicLike,
  fc
    .tuple(
      fc.constantFrom('cam', 'job', 'system', ''),
      fc.string({ maxLength: 70 }),
      fc.string({ maxLength: 10 }),
    )
    .map(([a, b, c]) => `${a}/${b}/${c}`),
  hostileValue,
  fc.constantFrom<unknown>(
    { toString: 1, valueOf: 1 },
    {
      toString: () => {
        throw new Error('trap');
      },
    },
  ),
  fc.constant(
    Object.create(null, {
      toString: {
        get() {
          throw new Error('trap');
        },
      },
    }),
  ),
);

describe('topic parsing', () => {
  it(
    `parseTopic answers a Topic or undefined for any input, and a Topic names its input exactly`,
    () => {
      fc.assert(
        fc.property(topicInput, (name) => {
          const t = recorded(
            'parseTopic (in-process): any value',
            () => parseTopic(name as string),
            (r) => r?.kind ?? 'undefined',
          );
          if (t === undefined) return;
          expect(typeof name).toBe('string');
          const back =
            t.kind === 'system'
              ? 'system'
              : t.kind === 'job'
                ? `job/${t.id}`
                : t.kind === 'frame'
                  ? `cam/${t.camera}/${t.variant}`
                  : `cam/${t.camera}/${t.kind}`;
          expect(back).toBe(name);
        }),
        budget.params(0, 0x70b1c, CASES, { shrink: true }),
      );
    },
    budget.timeoutMs,
  );

  it(
    'hub.check answers ok or BAD_TOPIC/UNKNOWN_TOPIC with a short message for any input, never calling its toString',
    () => {
      const hub = new Hub(new Set(['demo', 'p1']), createMetrics());
      fc.assert(
        fc.property(topicInput, (name) => {
          const c = recorded(
            'hub.check (in-process): any value',
            () => hub.check(name),
            (r) => (r.ok ? 'ok' : r.code),
          );
          if (c.ok) return;
          expect(['BAD_TOPIC', 'UNKNOWN_TOPIC']).toContain(c.code);
          expect(typeof c.message).toBe('string');
          // The message quotes at most 100 characters of what the client sent.
          expect(c.message.length).toBeLessThanOrEqual(200);
        }),
        budget.params(1, 0xc4ec, CASES, { shrink: true }),
      );
    },
    budget.timeoutMs,
  );
});

describe('Last-Event-ID', () => {
  const resumeInput = fc.oneof(
    fc.string({ unit: 'binary', maxLength: 200 }),
    fc
      .tuple(topicLike, fc.oneof(fc.nat().map(String), fc.string({ maxLength: 30 }), fc.double().map(String)))
      .map(([t, s]) => `${t}:${s}`),
    fc.constantFrom(
      ':',
      '::',
      ':1',
      'system:',
      'system:-1',
      'system:1e400',
      'system:0x10',
      'system: 7 ',
      'a:b:3',
      'system:3:',
      'system:3:k2x9a0qz:1',
      'system:3:not an epoch',
    ),
  );

  it(
    'parseLastEventId answers undefined or {topic, seq >= 0} for any header, and reads back what an event id wrote',
    () => {
      fc.assert(
        fc.property(resumeInput, (id) => {
          const r = recorded(
            'Last-Event-ID parser (in-process)',
            () => parseLastEventId(id),
            (x) => (x ? 'position' : 'ignored'),
          );
          if (!r) return;
          expect(r.topic.length).toBeGreaterThan(0);
          expect(Number.isInteger(r.seq) && r.seq >= 0).toBe(true);
        }),
        budget.params(2, 0x1a57, CASES, { shrink: true }),
      );
      // Topics never contain ':' (parseTopic refuses it), which is what lets an id carry an epoch.
      fc.assert(
        fc.property(topicLike, fc.nat(), (topic, seq) => {
          if (topic.length === 0 || topic.includes(':')) return;
          expect(parseLastEventId(`${topic}:${seq}`)).toEqual({ topic, seq });
          expect(parseLastEventId(`${topic}:${seq}:k2x9a0qz`)).toEqual({ topic, seq, epoch: 'k2x9a0qz' });
        }),
        budget.params(3, 0x1a58, 1000, { shrink: true }),
      );
    },
    budget.timeoutMs,
  );
});

describe('config loading', () => {
  const dir = mkdtempSync(join(tmpdir(), 'framehub-fuzz-config-'));
  mkdirSync(join(dir, 'a-directory'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const anyJson: fc.Arbitrary<unknown> = fc.oneof(fc.jsonValue({ maxDepth: 3 }), fc.constant(undefined));
  /** A value for a config field: usually plausible, often the wrong type or out of range. */
  const fieldValue = fc.oneof(
    fc.integer({ min: -2, max: 70_000 }),
    fc.double(),
    fc.constantFrom('test', 'push', 'rtsp://u:p@h/s', 'ftp://x', '0.0.0.0', '', 'a'.repeat(40)),
    anyJson,
  );
  const section = (keys: string[]) =>
    fc.dictionary(fc.constantFrom(...keys, '__proto__', 'constructor'), fieldValue, { maxKeys: 4 });
  const configShaped = fc.record(
    {
      host: fieldValue,
      port: fieldValue,
      cameras: fc.oneof(
        fc.array(section(['id', 'source', 'fps', 'width', 'height', 'quality', 'audio', 'audioRate']), {
          maxLength: 3,
        }),
        anyJson,
      ),
      pool: section(['threads', 'ringBytes', 'maxQueuedFrames']),
      ws: section([
        'maxPayloadBytes',
        'authTimeoutMs',
        'maxUnauthenticated',
        'subscribeRatePerSecond',
        'subscribeBurst',
      ]),
      viewers: section([
        'softBufferBytes',
        'hardBufferBytes',
        'maxConnections',
        'maxTopicsPerConnection',
        'historyPerTopic',
      ]),
      auth: section([
        'hs256Secret',
        'publicKeyFile',
        'jwksFile',
        'algorithms',
        'issuer',
        'audience',
        'clockToleranceSeconds',
      ]),
      vad: section(['frameMs', 'startDb', 'stopDb', 'floorWindowMs', 'maxSegmentMs']),
      jobs: section(['maxUploadBytes', 'maxActive', 'ttlSeconds', 'timeoutSeconds', 'maxUpsampleRatio']),
      images: section(['maxPixels']),
      shutdown: section(['deadlineMs']),
      ffmpegPath: fieldValue,
    },
    { requiredKeys: [] },
  );
  /** A valid config with one field set to anything: reaches the checks past the first. */
  const oneFieldOff = fc
    .tuple(
      fc.constantFrom(
        ['port'],
        ['host'],
        ['cameras', 0, 'id'],
        ['cameras', 0, 'source'],
        ['cameras', 0, 'fps'],
        ['cameras', 0, 'width'],
        ['pool', 'threads'],
        ['ws', 'maxPayloadBytes'],
        ['viewers', 'maxTopicsPerConnection'],
        ['auth', 'hs256Secret'],
        ['vad', 'stopDb'],
        ['jobs', 'ttlSeconds'],
        ['images', 'maxPixels'],
      ),
      fieldValue,
    )
    .map(([path, value]) => {
      const config: Record<string, unknown> = { port: 0, cameras: [{ id: 'demo', source: 'test' }] };
      let at = config as Record<string | number, unknown>;
      for (const key of path.slice(0, -1)) {
        at[key] ??= {};
        at = at[key] as Record<string | number, unknown>;
      }
      at[path[path.length - 1]!] = value;
      return JSON.stringify(config);
    });
  const fileText = fc.oneof(
    { weight: 4, arbitrary: oneFieldOff },
    { weight: 4, arbitrary: configShaped.map((c) => JSON.stringify(c)) },
    { weight: 2, arbitrary: fc.json({ maxDepth: 4 }) },
    { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 200 }) },
    {
      weight: 1,
      arbitrary: fc.constantFrom(
        '{"__proto__":{"port":1}}',
        '{"pool":{"__proto__":{"threads":-1}}}',
        '{"cameras":[{"__proto__":{"id":"x"}}]}',
        `${'['.repeat(5000)}${']'.repeat(5000)}`,
        `{"a":${'{"a":'.repeat(3000)}1${'}'.repeat(3000)}}`,
        '\ufeff{}',
        '',
      ),
    },
  );
  // Mostly no flags and no environment, so that the file's own checks are what decides.
  const argv = fc.oneof(
    { weight: 3, arbitrary: fc.constant<string[]>([]) },
    fc.array(
      fc.oneof(
        fc.constantFrom('--port', '--host', '--pool-threads', '--config', '--nope', '-p'),
        fc.string({ maxLength: 12 }),
      ),
      {
        maxLength: 4,
      },
    ),
  );
  const env = fc.oneof(
    { weight: 3, arbitrary: fc.constant<Record<string, string>>({}) },
    fc.dictionary(
      fc.constantFrom(
        'FRAMEHUB_HOST',
        'FRAMEHUB_PORT',
        'FRAMEHUB_POOL_THREADS',
        'FRAMEHUB_AUTH_HS256_SECRET',
        'FFMPEG_PATH',
      ),
      fc.string({ maxLength: 40 }),
    ),
  );

  it(
    'loadConfig returns a config or throws ConfigError for any file, flags and environment',
    () => {
      const file = join(dir, 'config.json');
      fc.assert(
        fc.property(fileText, argv, env, fc.nat(9), (text, args, vars, where) => {
          writeFileSync(file, text);
          const path =
            where === 0 ? join(dir, 'missing.json') : where === 1 ? join(dir, 'a-directory') : file;
          const cls = 'loadConfig (in-process): random files, flags, env';
          try {
            const config = loadConfig(['--config', path, ...args], vars);
            rel.record(cls, 'config');
            expect(typeof config.port).toBe('number');
          } catch (err) {
            rel.record(
              cls,
              err instanceof ConfigError
                ? 'ConfigError'
                : `threw ${(err as Error)?.constructor?.name} (WRONG)`,
            );
            if (!(err instanceof ConfigError)) throw err;
            expect(err.message.length).toBeGreaterThan(0);
          }
        }),
        budget.params(4, 0xc0f19, 1000, { shrink: true }),
      );
    },
    budget.timeoutMs,
  );
});
