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

/** @type {import('./transport.js').OpenTransport} */
export function open(host) {
  const url = toWsUrl(host.url('ws', { topics: `${host.frameTopic},${host.vadTopic}` }));
  // The token goes in a subprotocol entry, not the URL: browsers cannot set headers here.
  const ws = new WebSocket(url, wsProtocols(host.token));
  ws.binaryType = 'arraybuffer';
  // hello asks for the server's epoch, and on a reconnect resumes the VAD events missed while
  // away, naming the epoch they came from (frames always restart at the newest one).
  ws.onopen = () => {
    const { vadSeq, vadEpoch, vadTopic } = host;
    /** @type {Record<string, unknown>} */
    const hello = { type: 'hello' };
    if (vadSeq !== undefined) hello.resume = { [vadTopic]: vadSeq };
    // Never an undefined field: msgpack would carry it as an extension, which the server refuses.
    if (vadSeq !== undefined && vadEpoch) hello.epoch = vadEpoch;
    ws.send(pack(hello));
  };
  ws.onmessage = (ev) => {
    host.alive();
    if (!(ev.data instanceof ArrayBuffer))
      return host.malformed('text message', 'the server sends binary only');
    let record;
    try {
      record = unpack(new Uint8Array(ev.data));
    } catch (err) {
      return host.malformed('undecodable', `not msgpack: ${err instanceof Error ? err.message : err}`);
    }
    dispatchRecord(host, record, binary);
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
