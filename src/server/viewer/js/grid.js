// @ts-check
/**
 * How many columns the wall uses. DOM-free, so it is unit-tested in Node.
 *
 * Fill mode: every tile fits in the window, and the column count is the one that gives the
 * pictures the most area (a wide window puts 4 cameras in a row, a square one in 2×2). When
 * that would make tiles smaller than `minWidth` or their pictures shorter than `minMedia`,
 * the wall scrolls instead: as many columns of at least `minWidth` as fit, each picture 16:9.
 */

/**
 * @typedef {object} TileShape
 * @property {number} aspect    picture width / height the layout plans for (cameras vary; 16:9)
 * @property {number} chrome    px of a tile that are not picture (title bar and stats)
 * @property {number} gap       px between tiles
 * @property {number} minWidth  px; narrower tiles do not fit their title bar
 * @property {number} minMedia  px; shorter pictures are not worth filling the window for
 */

/** @type {TileShape} */
export const DEFAULT_SHAPE = { aspect: 16 / 9, chrome: 64, gap: 8, minWidth: 260, minMedia: 120 };

/**
 * @param {number} count  tiles
 * @param {number} width  px available to the wall
 * @param {number} height px
 * @param {TileShape} [shape]
 * @returns {{ cols: number, rows: number, fill: boolean }}
 * @example fitGrid(4, 1600, 900) // { cols: 2, rows: 2, fill: true }
 */
export function fitGrid(count, width, height, shape = DEFAULT_SHAPE) {
  const n = Math.max(1, count);
  let best = { cols: 1, rows: n, fill: false };
  let bestArea = -1;
  for (let cols = 1; cols <= n; cols++) {
    const rows = Math.ceil(n / cols);
    const cellW = (width - shape.gap * (cols - 1)) / cols;
    const mediaH = (height - shape.gap * (rows - 1)) / rows - shape.chrome;
    if (cellW < shape.minWidth || mediaH < shape.minMedia) continue;
    // The picture is letterboxed into its cell: it is as wide as the cell or as tall as it.
    const picW = Math.min(cellW, mediaH * shape.aspect);
    const area = picW * (picW / shape.aspect);
    if (area > bestArea) {
      bestArea = area;
      best = { cols, rows, fill: true };
    }
  }
  if (best.fill) return best;
  const cols = Math.max(1, Math.min(n, Math.floor((width + shape.gap) / (shape.minWidth + shape.gap))));
  return { cols, rows: Math.ceil(n / cols), fill: false };
}
