// @ts-check
/**
 * Server-Sent Events transport: one EventSource per tile, JSON records with the JPEG in
 * base64. EventSource would retry on its own at a fixed pace and gives up for good on an
 * HTTP error, so the first error closes it and the tile's own backoff takes over.
 */
import { dispatchRecord } from './dispatch.js';

/**
 * @param {unknown} data  base64 JPEG
 * @returns {Uint8Array | undefined}
 */
function fromBase64(data) {
  if (typeof data !== 'string') return undefined;
  let bin;
  try {
    bin = atob(data);
  } catch {
    return undefined; // not base64: the caller counts the frame as malformed
  }
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** The record types a tile uses; EventSource only reports event names it is told about. */
const EVENTS = ['frame', 'vad', 'variant'];

/** @type {import('./transport.js').OpenTransport} */
export function open(host) {
  /** @type {Record<string, string>} */
  const query = { topics: `${host.frameTopic},${host.vadTopic}`, token: host.token };
  // Resume VAD events missed while away (frames always restart at the newest one).
  if (host.vadSeq !== undefined)
    query.lastEventId = `${host.vadTopic}:${host.vadSeq}${host.vadEpoch ? `:${host.vadEpoch}` : ''}`;
  const url = host.url('sse', query).href;
  const es = new EventSource(url);
  let opened = false;
  /** @param {MessageEvent} ev */
  const onRecord = (ev) => {
    host.alive();
    // Event ids are `<topic>:<seq>:<epoch>`; frames carry none.
    const epoch = ev.lastEventId.split(':')[2];
    if (epoch) host.epoch(epoch);
    let record;
    try {
      record = JSON.parse(ev.data);
    } catch (err) {
      return host.malformed('undecodable', `not JSON: ${err instanceof Error ? err.message : err}`);
    }
    dispatchRecord(host, record, fromBase64);
  };
  for (const type of EVENTS) es.addEventListener(type, onRecord);
  es.onopen = () => {
    opened = true;
    host.alive();
  };
  es.onerror = () => {
    if (opened) host.fail('sse connection lost');
    else host.fail('sse failed to open', url);
  };
  return {
    close() {
      for (const type of EVENTS) es.removeEventListener(type, onRecord);
      es.onopen = null;
      es.onerror = null;
      es.close();
    },
  };
}
