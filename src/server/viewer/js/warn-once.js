// @ts-check
/**
 * Console warnings for input the page could not use, once per kind per page: a broken
 * server would otherwise print one line per frame. Later ones are counted where they
 * happened (data-malformed on the tile, or on #wall for the shared event socket).
 */

const warned = new Set();

/** @param {string} kind @param {string} message */
export function warnOnce(kind, message) {
  if (warned.has(kind)) return;
  warned.add(kind);
  console.warn(`framehub wall: ${message} (further "${kind}" input is only counted, in data-malformed)`);
}
