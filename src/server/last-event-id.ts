/**
 * Parses an SSE resume position, `<topic>:<seq>` (topics contain no colon, so the last colon
 * splits it). Undefined when it is not one; the caller then replays nothing. It takes the
 * `Last-Event-ID` header or `?lastEventId=` verbatim, so it must hold for any string.
 *
 * @example
 *   parseLastEventId('cam/demo/vad:17') // { topic: 'cam/demo/vad', seq: 17 }
 */
export function parseLastEventId(id: string): { topic: string; seq: number } | undefined {
  const at = id.lastIndexOf(':');
  const seq = Number(id.slice(at + 1));
  return at > 0 && Number.isInteger(seq) && seq >= 0 ? { topic: id.slice(0, at), seq } : undefined;
}
