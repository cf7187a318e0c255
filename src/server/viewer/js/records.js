// @ts-check
/**
 * The server records the page reads, and checks that turn an untrusted decoded value into
 * one of them. The frame and error shapes come from the server's own types, so a changed
 * record fails `tsc -p src/server/viewer/tsconfig.json`; the rest have no server type yet
 * (events are built as plain objects in src/ingest/audio-ingest.ts and src/server/ws.ts),
 * so they are written out here from the README's "Wire protocol".
 *
 * A reader returns the record, or a string saying what is wrong with it: the tile counts
 * that as malformed and shows it, instead of dropping it silently. DOM-free.
 */

import { FRAME_VARIANTS } from './lists.js';

/** @typedef {import('../../../wire/records.js').FrameRecord} ServerFrameRecord */
/** @typedef {import('../../../wire/protocol.js').ErrorRecord} ErrorRecord */
/** @typedef {import('./lists.js').FrameVariant} FrameVariant */

/**
 * A frame as every transport hands it to its tile: the server's frame record (README "Wire
 * protocol": WS sends it as msgpack with `data` binary, SSE as JSON with `data` base64,
 * MJPEG as part headers) with the JPEG decoded into `bytes`. `cached` is true for a frame
 * the server sent from its cache rather than live (the wire's `cached: true`, or for
 * MJPEG the first part of a topic): it can be up to about 1 s old, so the seq gap after it
 * is no loss. `seq` is the camera's frame number, the same across variants; `ts` the
 * capture time in ms since the epoch; `topic` the concrete `cam/<id>/<variant>`.
 *
 * @typedef {Pick<ServerFrameRecord, 'topic' | 'seq' | 'ts' | 'width' | 'height'>
 *   & { mime: string, cached: boolean, bytes: Uint8Array }} FrameIn
 */

/**
 * @typedef {object} VadRecord
 * @property {'vad'} type
 * @property {string} topic
 * @property {number} seq
 * @property {number} ts
 * @property {'speech' | 'silence'} state
 * @property {number | null} dbfs
 * @property {number | null} floor
 */

/**
 * Sent on subscribe to `cam/<id>/auto` and on every adaptive switch.
 * @typedef {object} VariantRecord
 * @property {'variant'} type
 * @property {string} topic
 * @property {FrameVariant} variant
 */

/**
 * Record types the page receives and deliberately does not use: segment events share the
 * VAD topic; `pong` answers the page's own ping (`hello` is read for its epoch); `gap` tells a resuming
 * client that history no longer covers its position, which costs the voice dot nothing it
 * will not get again at the next change. Any other type counts as malformed.
 */
export const IGNORED_TYPES = new Set(['segment', 'pong', 'gap']);

/** @param {unknown} v @returns {v is Record<string, unknown>} */
export const isObject = (v) => typeof v === 'object' && v !== null && !Array.isArray(v);
/** @param {unknown} v @returns {v is number} */
const isInt = (v) => Number.isSafeInteger(v);
/** @param {unknown} v @returns {v is number} */
const isNumber = (v) => typeof v === 'number' && Number.isFinite(v);
const CONCRETE = new Set(/** @type {readonly string[]} */ (FRAME_VARIANTS));
const FRAME_TOPIC = new RegExp(`^cam/[^/]+/(${FRAME_VARIANTS.join('|')})$`);

/**
 * The fields every frame record has, without its bytes (their encoding differs per transport).
 *
 * @param {Record<string, unknown>} r
 * @returns {Omit<FrameIn, 'bytes'> | string}
 */
export function readFrameFields(r) {
  const { topic, seq, ts, width, height, mime, cached } = r;
  if (typeof topic !== 'string' || !FRAME_TOPIC.test(topic)) return 'frame without a frame topic';
  if (!isInt(seq) || seq < 0) return 'frame without an integer seq';
  if (!isNumber(ts)) return 'frame without a numeric ts';
  if (!isInt(width) || !isInt(height)) return 'frame without integer width and height';
  if (typeof mime !== 'string') return 'frame without a mime type';
  if (cached !== undefined && typeof cached !== 'boolean') return 'frame with a non-boolean cached';
  return { topic, seq, ts, width, height, mime, cached: cached === true };
}

/**
 * @param {Record<string, unknown>} r
 * @returns {VadRecord | string}
 */
export function readVad(r) {
  const { topic, seq, ts, state, dbfs, floor } = r;
  if (typeof topic !== 'string' || !isInt(seq) || !isNumber(ts)) return 'vad without topic, seq and ts';
  if (state !== 'speech' && state !== 'silence') return 'vad with a state other than speech or silence';
  if (dbfs !== null && !isNumber(dbfs)) return 'vad with a non-numeric dbfs';
  if (floor !== null && !isNumber(floor)) return 'vad with a non-numeric floor';
  return { type: 'vad', topic, seq, ts, state, dbfs, floor };
}

/**
 * @param {Record<string, unknown>} r
 * @returns {VariantRecord | string}
 */
export function readVariant(r) {
  const { topic, variant } = r;
  if (typeof topic !== 'string') return 'variant without a topic';
  if (typeof variant !== 'string' || !CONCRETE.has(variant)) return 'variant naming no concrete variant';
  return { type: 'variant', topic, variant: /** @type {FrameVariant} */ (variant) };
}

/**
 * @param {Record<string, unknown>} r
 * @returns {ErrorRecord | string}
 */
export function readError(r) {
  const { code, message, topic } = r;
  if (typeof code !== 'string' || typeof message !== 'string') return 'error without code and message';
  /** @type {ErrorRecord} */
  const rec = { type: 'error', code: /** @type {ErrorRecord['code']} */ (code), message };
  if (typeof topic === 'string') rec.topic = topic;
  return rec;
}
