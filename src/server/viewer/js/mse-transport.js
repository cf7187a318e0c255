// @ts-check
/**
 * MSE transport: the camera's live H.264 (`cam/<id>/video`, fMP4 init segment and fragments)
 * over one `/ws` socket, played in the tile's <video> by an MsePlayer, plus the camera's VAD
 * topic as on the WS transport. It plays only `video`: the tile's variant does not apply.
 *
 * The subscription names the codecs this browser can play (from live-edge.js's candidates),
 * so the server can refuse a stream the browser cannot decode with UNSUPPORTED_CODEC instead
 * of sending bytes that fail in the decoder. A camera without video answers with an error the
 * tile shows; the socket stays up for the voice dot.
 */
import { pack } from './codec.js';
import { dispatchRecord } from './dispatch.js';
import { mp4Type, supportedCodecs } from './live-edge.js';
import { MsePlayer, mediaSourceClass } from './mse-player.js';
import { toWsUrl, wsProtocols } from './net.js';
import { dispatchVideo } from './video-records.js';
import { decodeMessage, helloRecord } from './ws-transport.js';

/** @param {unknown} data */
const binary = (data) => (data instanceof Uint8Array ? data : undefined);

/** @type {import('./transport.js').OpenTransport} */
export function open(host) {
  const openedAt = performance.now();
  const MS = mediaSourceClass();
  const codecs = MS ? supportedCodecs((type) => MS.isTypeSupported(type)) : [];
  const out = host.video;
  const player = new MsePlayer(
    out.element,
    {
      presented: (p) => out.presented(p),
      reset: (reason) => out.reset(reason),
      fail: (reason) => host.fail(reason),
    },
    openedAt,
  );
  // The video topic is subscribed by message, since it carries the codec list; the VAD topic
  // rides in the URL as on the WS transport.
  const url = toWsUrl(host.url('ws', { topics: host.vadTopic }));
  const ws = new WebSocket(url, wsProtocols(host.token));
  ws.binaryType = 'arraybuffer';
  ws.onopen = () => {
    ws.send(pack(helloRecord(host)));
    if (codecs.length) {
      ws.send(pack({ type: 'sub', topics: [host.frameTopic], codecs }));
      return;
    }
    host.serverError(
      unsupported(
        MS
          ? 'this browser plays no H.264 profile through MSE'
          : 'this browser has no Media Source Extensions',
      ),
    );
  };
  /** The error the server would send, for what the page finds out itself. @param {string} message */
  const unsupported = (message) =>
    /** @type {import('./records.js').ErrorRecord} */ ({
      type: 'error',
      code: 'UNSUPPORTED_CODEC',
      topic: host.frameTopic,
      message,
    });
  /** Video records for another topic than ours are someone else's bug: counted, not played. */
  const ours = /** @param {{ topic: string }} r */ (r) => {
    if (r.topic === host.frameTopic) return true;
    host.malformed('video topic', `a video record for ${r.topic.slice(0, 60)}`);
    return false;
  };
  /** False after an init this browser cannot play: its fragments are ignored until the next init. */
  let playable = true;
  const video = {
    /** @param {import('./video-records.js').VideoInit} rec */
    init: (rec) => {
      if (!ours(rec)) return;
      playable = !MS || MS.isTypeSupported(mp4Type(rec.codec));
      // The server lets a subscription through before its stream has an init (it cannot check
      // the codec yet): the page checks it here.
      if (!playable) {
        host.serverError(unsupported(`this browser cannot play the camera's ${rec.codec} through MSE`));
        return;
      }
      out.init(rec);
      player.start(rec);
    },
    /** @param {import('./video-records.js').VideoFragment} rec */
    fragment: (rec) => {
      if (!ours(rec) || !playable) return;
      out.fragment(rec);
      player.fragment(rec);
    },
    malformed: host.malformed,
  };
  ws.onmessage = (ev) => {
    const record = decodeMessage(host, ev);
    if (record !== undefined && !dispatchVideo(record, binary, video)) dispatchRecord(host, record, binary);
  };
  ws.onclose = (ev) => host.fail(`ws closed ${ev.code}${ev.reason ? ` ${ev.reason}` : ''}`);
  return {
    close() {
      ws.onopen = null;
      ws.onmessage = null;
      ws.onclose = null;
      ws.close();
      player.close();
    },
    ping() {
      if (ws.readyState === WebSocket.OPEN) ws.send(pack({ type: 'ping', id: Date.now() }));
    },
  };
}
