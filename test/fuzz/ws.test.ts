import fc from 'fast-check';
import { afterAll, afterEach, beforeAll, describe, it } from 'vitest';
import { reliability } from '../support/reliability.js';
import { fileBudget } from './budget.js';
import { fuzzConfig, fuzzLive, LiveDaemon } from './live.js';
import { Probe } from './probe.js';
import { SILENT, wsCases } from './ws-cases.js';

/**
 * `/ws` with auth on, as an anonymous client before `hello` and as a viewer after it: random
 * msgpack values with every extension, raw bytes, deep nesting, huge declared lengths, and
 * each record type (hello, sub, unsub, ping) with every field of the wrong type. Every message
 * must get an error record with a code, a documented close code or its documented answer, and
 * after every batch the daemon is up, its RSS bounded, and a viewer of another camera still
 * gets frames.
 */
const rel = reliability('fuzz-ws');
const budget = fileBudget(4);
const CASES = 1000;
const live = new LiveDaemon(fuzzConfig(true));

beforeAll(() => live.start(), 60_000);
afterAll(() => live.stop());
afterEach(() => live.ensureUp(), 60_000);

const anonymous = () => Probe.open(live.daemon.wsUrl);
const viewer = () => Probe.open(live.daemon.wsUrl, live.viewerToken);

const { wrongTypes, values, bytes } = wsCases(() => live.viewerToken);

describe('/ws before hello (auth on)', () => {
  it(
    'answers random msgpack values and each record type with wrong field types',
    () =>
      fuzzLive({
        live,
        rel,
        cls: '/ws before auth: msgpack values (every extension) and records with wrong field types',
        cases: fc.oneof(values, wrongTypes()),
        connect: anonymous,
        anonymous: true,
        silentTypes: SILENT,
        params: budget.params(0, 0x3e5a, CASES),
      }),
    budget.timeoutMs,
  );

  it(
    'answers raw bytes, every extension type, deep nesting, huge declared lengths and invalid UTF-8',
    () =>
      fuzzLive({
        live,
        rel,
        cls: '/ws before auth: raw bytes, ext types, nesting 100-10000, huge lengths, invalid UTF-8',
        cases: bytes,
        connect: anonymous,
        anonymous: true,
        silentTypes: SILENT,
        params: budget.params(1, 0x3e5b, CASES),
      }),
    budget.timeoutMs,
  );
});

describe('/ws after hello (auth on, viewer token)', () => {
  it(
    'answers each record type with wrong field types',
    () =>
      fuzzLive({
        live,
        rel,
        cls: '/ws after auth: hello/sub/unsub/ping with wrong field types',
        cases: wrongTypes(),
        connect: viewer,
        silentTypes: SILENT,
        params: budget.params(2, 0x3e5c, CASES),
      }),
    budget.timeoutMs,
  );

  it(
    'answers random values and bytes',
    () =>
      fuzzLive({
        live,
        rel,
        cls: '/ws after auth: msgpack values and raw bytes',
        cases: fc.oneof(values, bytes),
        connect: viewer,
        silentTypes: SILENT,
        params: budget.params(3, 0x3e5d, CASES),
      }),
    budget.timeoutMs,
  );
});
