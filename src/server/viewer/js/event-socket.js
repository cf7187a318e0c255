// @ts-check
/**
 * One page-level WebSocket for the VAD events of tiles whose transport carries no events
 * (MJPEG). Opened when the first topic is added, closed when the last one goes, and
 * reconnected with backoff in between.
 */
import { pack, unpack } from './codec.js';
import { backoffDelay, toWsUrl, wsProtocols } from './net.js';
import { IGNORED_TYPES, isObject, readError, readVad } from './records.js';

/** @typedef {(rec: import('./records.js').VadRecord) => void} VadHandler */

export class EventSocket {
  /**
   * @param {(path: string, query?: Record<string, string>) => URL} url  page-relative URLs
   * @param {string} token
   * @param {(kind: string, detail: string) => void} malformed
   */
  constructor(url, token, malformed) {
    this.url = url;
    this.token = token;
    this.malformed = malformed;
    /** @type {Map<string, Set<VadHandler>>} topic → handlers */
    this.handlers = new Map();
    /** @type {WebSocket | undefined} */
    this.ws = undefined;
    this.attempt = 0;
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    this.timer = undefined;
  }

  /** @param {string} topic @param {VadHandler} handler */
  add(topic, handler) {
    let set = this.handlers.get(topic);
    if (!set) {
      set = new Set();
      this.handlers.set(topic, set);
      this.send({ type: 'sub', topics: [topic] });
    }
    set.add(handler);
    this.ensure();
  }

  /** @param {string} topic @param {VadHandler} handler */
  remove(topic, handler) {
    const set = this.handlers.get(topic);
    if (!set?.delete(handler) || set.size) return;
    this.handlers.delete(topic);
    this.send({ type: 'unsub', topics: [topic] });
    if (this.handlers.size === 0) this.close();
  }

  /** @param {Record<string, unknown>} record */
  send(record) {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(pack(record));
  }

  ensure() {
    if (this.ws || this.timer || this.handlers.size === 0) return;
    const url = toWsUrl(this.url('ws', { topics: [...this.handlers.keys()].join(',') }));
    const ws = new WebSocket(url, wsProtocols(this.token));
    ws.binaryType = 'arraybuffer';
    this.ws = ws;
    // Topics added while connecting: (re)subscribe them all; the server ignores repeats.
    ws.onopen = () => this.send({ type: 'sub', topics: [...this.handlers.keys()] });
    ws.onmessage = (ev) => {
      this.attempt = 0;
      this.receive(ev.data);
    };
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.ws = undefined;
      if (this.handlers.size === 0) return;
      this.timer = setTimeout(
        () => {
          this.timer = undefined;
          this.ensure();
        },
        backoffDelay(this.attempt++),
      );
    };
  }

  /** @param {unknown} data */
  receive(data) {
    let record;
    try {
      record = unpack(new Uint8Array(/** @type {ArrayBuffer} */ (data)));
    } catch (err) {
      return this.malformed('undecodable', `not msgpack: ${err instanceof Error ? err.message : err}`);
    }
    if (!isObject(record) || typeof record.type !== 'string')
      return this.malformed('not a record', 'a message that is not a map with a string "type"');
    if (record.type === 'error') {
      // Typically a VAD topic the token may not see: that tile's dot stays "unknown".
      const err = readError(record);
      if (typeof err === 'string') return this.malformed('error', err);
      return console.warn(`framehub wall: event socket: ${err.code}: ${err.message}`);
    }
    if (record.type !== 'vad') {
      if (!IGNORED_TYPES.has(record.type)) this.malformed('unknown type', `type ${record.type.slice(0, 40)}`);
      return;
    }
    const vad = readVad(record);
    if (typeof vad === 'string') return this.malformed('vad', vad);
    for (const h of this.handlers.get(vad.topic) ?? []) h(vad);
  }

  close() {
    clearTimeout(this.timer);
    this.timer = undefined;
    const ws = this.ws;
    this.ws = undefined;
    ws?.close();
  }
}
