import { decode } from '../../src/wire/records.js';
import { nowMs, sleep } from '../lib/clock.js';
import { WsLite } from '../lib/ws-lite.js';
import type { JoinSample } from './shared.js';

/** The fields of a `cam/<id>/video` record a join looks at. */
interface VideoRecord {
  type?: string;
  keyframe?: boolean;
  cached?: boolean;
  code?: string;
  message?: string;
}

/**
 * One new viewer of a `video` topic at the WS level: connects with `/ws?topics=<topic>` and
 * times, from the connect's start, the init record and the first keyframe fragment after it
 * (the first picture a decoder can show). With the GOP cache that keyframe is the first cached
 * fragment, sent at once; without it the viewer waits for the camera's next keyframe. Every
 * record is decoded (a join sees a few dozen), so the flags are read, not peeked.
 *
 * @example
 *   const s = await joinOnce(port, 'cam/v/video', 10_000); // { firstPictureMs: 3.1, cachedFragments: 17, … }
 */
export function joinOnce(port: number, topic: string, timeoutMs: number, atMs = 0): Promise<JoinSample> {
  return new Promise((resolve) => {
    const startedAt = nowMs();
    const sample: JoinSample = {
      topic,
      atMs,
      firstPictureMs: Number.NaN,
      initMs: Number.NaN,
      cachedFragments: 0,
    };
    let done = false;
    const finish = (error?: string) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (error) sample.error = error;
      ws.close();
      resolve(sample);
    };
    const timer = setTimeout(() => finish(`no keyframe within ${timeoutMs} ms`), timeoutMs);
    const ws = new WsLite(port, `/ws?topics=${encodeURIComponent(topic)}`, {
      onOpen: () => {},
      onMessage: (chunks, _length, binary) => {
        if (!binary) return;
        const at = nowMs() - startedAt;
        const r = decode(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)) as VideoRecord;
        if (r.type === 'error') return finish(`${r.code}: ${r.message}`);
        if (r.type === 'init') sample.initMs = at;
        if (r.type !== 'fragment') return;
        if (r.cached) sample.cachedFragments++;
        if (!Number.isNaN(sample.initMs) && r.keyframe && Number.isNaN(sample.firstPictureMs)) {
          sample.firstPictureMs = at;
          // The cached burst follows its keyframe at once: count it before closing.
          if (!r.cached) finish();
        } else if (!r.cached && !Number.isNaN(sample.firstPictureMs)) finish();
      },
      onClose: (code) => finish(`closed (${code}) before a keyframe`),
      onError: (err) => finish(err.message),
    });
  });
}

/**
 * `count` joins of each topic, each at a uniformly random moment of a `spreadMs` span, so they
 * land at random points of the GOP; the topics' joins run side by side. Each join ends at its
 * first keyframe's live successor (or its timeout), so they overlap little.
 *
 * @example
 *   const samples = await timedJoins(port, ['cam/v/video', 'cam/nocache/video'], 50, 25_000);
 */
export async function timedJoins(
  port: number,
  topics: string[],
  count: number,
  spreadMs: number,
  timeoutMs = 10_000,
): Promise<JoinSample[]> {
  const start = nowMs();
  const plan = topics.flatMap((topic) =>
    Array.from({ length: count }, () => ({ topic, atMs: Math.random() * spreadMs })),
  );
  return Promise.all(
    plan.map(async ({ topic, atMs }) => {
      await sleep(Math.max(0, start + atMs - nowMs()));
      return joinOnce(port, topic, timeoutMs, atMs);
    }),
  );
}
