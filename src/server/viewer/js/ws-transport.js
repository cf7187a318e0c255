// @ts-check
/**
 * WebSocket transport: one `/ws` socket per tile carrying its frame topic and its VAD topic
 * as binary msgpack records. The only transport that can ping.
 */
import { pack, unpack } from './codec.js';
import { dispatchRecord } from './dispatch.js';
import { toWsUrl, wsProtocols } from './net.js';

/** @param {unknown} data */
const binary = (data) => (data instanceof Uint8Array ? data : undefined);

/**
 * The `hello` a tile's socket opens with: it asks for the server's epoch, and on a reconnect
 * resumes the VAD events missed while away, naming the epoch they came from.
 * @param {import('./transport.js').TransportHost} host
 */
export function helloRecord(host) {
  const { vadSeq, vadEpoch, vadTopic } = host;
  /** @type {Record<string, unknown>} */
  const hello = { type: 'hello' };
  if (vadSeq !== undefined) hello.resume = { [vadTopic]: vadSeq };
  // Never an undefined field: msgpack would carry it as an extension, which the server refuses.
  if (vadSeq !== undefined && vadEpoch) hello.epoch = vadEpoch;
  return hello;
}

/**
 * A `/ws` message as a record: undefined (reported to the host as malformed) when it is text
 * or not msgpack. Counts as a sign of life either way.
 * @param {import('./transport.js').TransportHost} host
 * @param {MessageEvent} ev
 * @returns {unknown}
 */
export function decodeMessage(host, ev) {
  host.alive();
  if (!(ev.data instanceof ArrayBuffer)) {
    host.malformed('text message', 'the server sends binary only');
    return undefined;
  }
  try {
    return unpack(new Uint8Array(ev.data));
  } catch (err) {
    host.malformed('undecodable', `not msgpack: ${err instanceof Error ? err.message : err}`);
    return undefined;
  }
}

/** @type {import('./transport.js').OpenTransport} */
export function open(host) {
  const url = toWsUrl(host.url('ws', { topics: `${host.frameTopic},${host.vadTopic}` }));
  // The token goes in a subprotocol entry, not the URL: browsers cannot set headers here.
  const ws = new WebSocket(url, wsProtocols(host.token));
  ws.binaryType = 'arraybuffer';
  // hello asks for the server's epoch, and on a reconnect resumes the VAD events missed while
  // away, naming the epoch they came from (frames always restart at the newest one).
  ws.onopen = () => ws.send(pack(helloRecord(host)));
  ws.onmessage = (ev) => {
    const record = decodeMessage(host, ev);
    if (record !== undefined) dispatchRecord(host, record, binary);
  };
  ws.onclose = (ev) => host.fail(`ws closed ${ev.code}${ev.reason ? ` ${ev.reason}` : ''}`);
  return {
    close() {
      ws.onopen = null;
      ws.onmessage = null;
      ws.onclose = null;
      ws.close();
    },
    ping() {
      if (ws.readyState === WebSocket.OPEN) ws.send(pack({ type: 'ping', id: Date.now() }));
    },
  };
}
