import fc from 'fast-check';
import { afterAll, afterEach, beforeAll, describe, it } from 'vitest';
import { reliability } from '../support/reliability.js';
import { fileBudget } from './budget.js';
import { fuzzConfig, fuzzLive, LiveDaemon } from './live.js';
import { Probe } from './probe.js';
import { SILENT, wsCases } from './ws-cases.js';

/**
 * `/ws` with auth off (loopback): every client is a viewer from its first message, so `sub`
 * reaches the topic checks without a `hello`. The same cases and checks as ws.test.ts, in one
 * target.
 */
const rel = reliability('fuzz-ws-noauth');
const budget = fileBudget(1);
const live = new LiveDaemon(fuzzConfig(false));
const { wrongTypes, values, bytes } = wsCases(() => live.viewerToken);

beforeAll(() => live.start(), 60_000);
afterAll(() => live.stop());
afterEach(() => live.ensureUp(), 60_000);

describe('/ws (auth off)', () => {
  it(
    'answers records with wrong field types, random values and raw bytes',
    () =>
      fuzzLive({
        live,
        rel,
        cls: '/ws auth off: records with wrong field types, msgpack values, raw bytes',
        cases: fc.oneof(wrongTypes(), values, bytes),
        connect: () => Probe.open(live.daemon.wsUrl),
        silentTypes: SILENT,
        params: budget.params(0, 0x3e5f, 1000),
      }),
    budget.timeoutMs,
  );
});
