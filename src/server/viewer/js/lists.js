// @ts-check
/**
 * The page's vocabularies, in one place: every select, URL parameter check and transport
 * registry is built from these lists, so adding a variant or a transport is one edit here
 * (plus its module, for a transport). DOM-free, so Node tests can import it.
 *
 * `FRAME_VARIANTS` must hold the same names as the server's `FRAME_VARIANTS`
 * (src/image/variant-names.ts); test/viewer-lists.test.ts compares them. The order here is the
 * order the selects show: smallest to largest, then `annotated` (medium with the camera's
 * name, the time and a speech indicator drawn on it).
 */

export const FRAME_VARIANTS = /** @type {const} */ (['low', 'medium', 'high', 'raw', 'annotated']);

/** What a tile may ask for: a concrete variant, or `auto` (the server picks by link speed). */
export const VARIANTS = /** @type {const} */ (['auto', ...FRAME_VARIANTS]);

/**
 * One module per transport implements it: see transport.js and transports.js. `mse` plays the
 * camera's live H.264 (`cam/<id>/video`) in a <video>; the others carry JPEG frames.
 */
export const TRANSPORTS = /** @type {const} */ (['ws', 'sse', 'mjpeg', 'mse']);

/** @typedef {(typeof FRAME_VARIANTS)[number]} FrameVariant */
/** @typedef {(typeof VARIANTS)[number]} Variant */
/** @typedef {(typeof TRANSPORTS)[number]} TransportName */

/**
 * Narrows an untrusted string (URL parameter, select value) to a member of `allowed`.
 *
 * @template {string} T
 * @param {string | null | undefined} value
 * @param {readonly T[]} allowed
 * @param {T} fallback
 * @returns {T}
 * @example pick('sse', TRANSPORTS, 'ws') // 'sse'; pick('ftp', TRANSPORTS, 'ws') // 'ws'
 */
export function pick(value, allowed, fallback) {
  return allowed.find((a) => a === value) ?? fallback;
}

/** What the selects show for a transport. @param {string} name */
export const transportLabel = (name) => name.toUpperCase();
