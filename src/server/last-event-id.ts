import { type LastEventId, validEpoch } from '../hub/resume.js';

/** Plain decimal only: Number() alone would also take ' 17', '0x11' and '1e3'. */
const DIGITS = /^\d{1,16}$/;

/**
 * Parses an SSE resume position: `<topic>:<seq>:<epoch>`, or the older `<topic>:<seq>` (taken
 * as from the current epoch, so a legacy client keeps today's behaviour within one process).
 * Topics contain no colon. Undefined when it is not one; the caller then replays nothing. It
 * takes the `Last-Event-ID` header or `?lastEventId=` verbatim, so it must hold for any string.
 *
 * @example
 *   parseLastEventId('cam/demo/vad:17:k2x9a0qz') // { topic: 'cam/demo/vad', seq: 17, epoch: 'k2x9a0qz' }
 *   parseLastEventId('cam/demo/vad:17') // { topic: 'cam/demo/vad', seq: 17 }
 */
export function parseLastEventId(id: string): LastEventId | undefined {
  const parts = id.split(':', 4);
  if (parts.length < 2 || parts.length > 3 || parts[0] === '') return undefined;
  const [topic, seqText, epoch] = parts as [string, string, string | undefined];
  const seq = Number(seqText);
  if (!DIGITS.test(seqText) || !Number.isSafeInteger(seq)) return undefined;
  if (epoch === undefined) return { topic, seq };
  return validEpoch(epoch) ? { topic, seq, epoch } : undefined;
}

/** The SSE `id:` of an event: its position, which the browser sends back as `Last-Event-ID`. */
export function lastEventId(topic: string, seq: number, epoch: string): string {
  return `${topic}:${seq}:${epoch}`;
}
