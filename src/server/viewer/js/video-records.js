// @ts-check
/**
 * The live H.264 records on `cam/<id>/video` (README "Wire protocol"), checked the way
 * records.js checks the others: a reader returns the record or a string saying what is
 * wrong with it, which the tile counts as malformed. DOM-free.
 *
 * The server answers a subscription with one `init` (ftyp+moov: codec and size), then the
 * fragments (moof+mdat) since the last keyframe marked `cached`, then live fragments, one per
 * frame. A new `init` mid-stream means ffmpeg restarted: media time starts again near 0.
 */

import { isObject } from './records.js';

/** Bytes one fragment may have: a 4K keyframe at a high bitrate stays well below this. */
export const MAX_FRAGMENT_BYTES = 8 * 1024 * 1024;
/** Bytes an init segment may have: ftyp+moov of one H.264 track is under 1 KB. */
export const MAX_INIT_BYTES = 64 * 1024;

const VIDEO_TOPIC = /^cam\/[^/]+\/video$/;
/** `avc1.` and six hex digits: profile, constraints, level. */
const AVC_CODEC = /^avc1\.[0-9a-f]{6}$/i;

/**
 * @typedef {object} VideoInit
 * @property {string} topic
 * @property {string} codec   e.g. `avc1.64001e`, for the SourceBuffer's MIME type
 * @property {number} width
 * @property {number} height
 * @property {Uint8Array} data  ftyp+moov
 */

/**
 * @typedef {object} VideoFragment
 * @property {string} topic
 * @property {number} seq      fragment number on the topic; a jump is a skip (slow viewer)
 * @property {number} ts       ms since the epoch when the daemon received it: its capture time
 * @property {number} pts      its media time in seconds (tfdt / timescale)
 * @property {boolean} keyframe
 * @property {boolean} cached  sent from the GOP cache at subscribe, not live
 * @property {Uint8Array} data moof+mdat
 */

/** @param {unknown} v @returns {v is number} */
const isInt = (v) => Number.isSafeInteger(v);
/** @param {unknown} v @returns {v is number} */
const isNumber = (v) => typeof v === 'number' && Number.isFinite(v);

/**
 * @param {Record<string, unknown>} r
 * @param {(data: unknown) => Uint8Array | undefined} bytesOf  `data` as bytes (binary on WS, base64 on SSE)
 * @returns {VideoInit | string}
 */
export function readVideoInit(r, bytesOf) {
  const { topic, codec, width, height } = r;
  if (typeof topic !== 'string' || !VIDEO_TOPIC.test(topic)) return 'init without a video topic';
  if (typeof codec !== 'string' || !AVC_CODEC.test(codec)) return 'init without an avc1 codec string';
  if (!isInt(width) || !isInt(height) || width <= 0 || height <= 0)
    return 'init without a positive integer width and height';
  const data = bytesOf(r.data);
  if (!data?.length) return 'init without data';
  if (data.length > MAX_INIT_BYTES) return `init of ${data.length} bytes (at most ${MAX_INIT_BYTES})`;
  return { topic, codec, width, height, data };
}

/**
 * @param {Record<string, unknown>} r
 * @param {(data: unknown) => Uint8Array | undefined} bytesOf
 * @returns {VideoFragment | string}
 */
export function readVideoFragment(r, bytesOf) {
  const { topic, seq, ts, pts, keyframe, cached } = r;
  if (typeof topic !== 'string' || !VIDEO_TOPIC.test(topic)) return 'fragment without a video topic';
  if (!isInt(seq) || seq < 0) return 'fragment without an integer seq';
  if (!isNumber(ts)) return 'fragment without a numeric ts';
  if (!isNumber(pts) || pts < 0) return 'fragment without a media time (pts)';
  if (typeof keyframe !== 'boolean') return 'fragment without a boolean keyframe';
  if (cached !== undefined && typeof cached !== 'boolean') return 'fragment with a non-boolean cached';
  const data = bytesOf(r.data);
  if (!data?.length) return 'fragment without data';
  if (data.length > MAX_FRAGMENT_BYTES)
    return `fragment of ${data.length} bytes (at most ${MAX_FRAGMENT_BYTES})`;
  return { topic, seq, ts, pts, keyframe, cached: cached === true, data };
}

/**
 * Routes a decoded record that is video: returns true when it was one (handled or counted
 * as malformed), false for any other type (the caller dispatches it as usual).
 * @param {unknown} value
 * @param {(data: unknown) => Uint8Array | undefined} bytesOf
 * @param {{ init: (r: VideoInit) => void, fragment: (r: VideoFragment) => void,
 *   malformed: (kind: string, detail: string) => void }} to
 */
export function dispatchVideo(value, bytesOf, to) {
  if (!isObject(value)) return false;
  if (value.type === 'init') {
    const rec = readVideoInit(value, bytesOf);
    if (typeof rec === 'string') to.malformed('init', rec);
    else to.init(rec);
    return true;
  }
  if (value.type === 'fragment') {
    const rec = readVideoFragment(value, bytesOf);
    if (typeof rec === 'string') to.malformed('fragment', rec);
    else to.fragment(rec);
    return true;
  }
  return false;
}
