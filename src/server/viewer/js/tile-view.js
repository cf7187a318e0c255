// @ts-check
/**
 * A tile's DOM: built from the page's <template>, written only where a value changed, and
 * its canvas painted from JPEG bytes. Everything a test or script reads is a data attribute
 * on the tile element (see viewer.js).
 */
import { changes, fillSelect, find } from './dom.js';
import { TRANSPORTS, transportLabel, VARIANTS } from './lists.js';

/**
 * What the tile shows, recomputed on every tick.
 * @typedef {object} TileSnapshot
 * @property {string} state
 * @property {string} overlay
 * @property {string} fps
 * @property {string} latency
 * @property {string} drops
 * @property {string} size
 * @property {string} error
 * @property {string} malformed  e.g. '3 malformed', or ''
 * @property {string} malformedDetail
 * @property {Record<string, string>} data  data-* attributes (camelCase keys)
 */

export class TileView {
  /**
   * @param {HTMLTemplateElement} template
   * @param {string} camera
   * @param {(choice: {transport: string, variant: string}) => void} onChoose  the user picked in a select
   */
  constructor(template, camera, onChoose) {
    const root = template.content.firstElementChild?.cloneNode(true);
    if (!(root instanceof HTMLElement)) throw new Error('viewer markup: empty tile template');
    this.el = root;
    const $ = /** @param {string} sel */ (sel) => find(root, sel, HTMLElement);
    this.ui = {
      name: $('.name'),
      up: $('.up'),
      vad: $('.vad'),
      transport: find(root, 'select.transport', HTMLSelectElement),
      variant: find(root, 'select.variant', HTMLSelectElement),
      canvas: find(root, 'canvas', HTMLCanvasElement),
      overlay: $('.overlay'),
      fps: $('.fps'),
      latency: $('.latency'),
      drops: $('.drops'),
      size: $('.size'),
      malformed: $('.malformed'),
      err: $('.err'),
    };
    const ui = this.ui;
    fillSelect(ui.transport, TRANSPORTS, transportLabel);
    fillSelect(ui.variant, VARIANTS);
    root.dataset.camera = camera;
    ui.name.textContent = camera;
    ui.name.title = camera;
    ui.canvas.setAttribute('aria-label', `camera ${camera}`);
    const choose = () => onChoose({ transport: ui.transport.value, variant: ui.variant.value });
    ui.transport.addEventListener('change', choose);
    ui.variant.addEventListener('change', choose);
    const ctx = ui.canvas.getContext('2d');
    if (!ctx) throw new Error('no 2d canvas context');
    this.ctx2d = ctx;

    /** @type {Map<string, (value: string) => void>} */
    this.dataCells = new Map();
    const text = /** @param {HTMLElement} el */ (el) =>
      changes(
        /** @param {string} v */ (v) => {
          el.textContent = v;
        },
      );
    this.cells = {
      state: changes(
        /** @param {string} v */ (v) => {
          root.dataset.state = v;
        },
      ),
      overlay: text(ui.overlay),
      fps: text(ui.fps),
      latency: text(ui.latency),
      drops: text(ui.drops),
      size: text(ui.size),
      malformed: text(ui.malformed),
      malformedDetail: changes(
        /** @param {string} v */ (v) => {
          ui.malformed.title = v;
        },
      ),
      error: changes(
        /** @param {string} v */ (v) => {
          ui.err.textContent = v;
          ui.err.title = v;
        },
      ),
      up: changes(
        /** @param {boolean} up */ (up) => {
          ui.up.dataset.up = String(up);
          ui.up.textContent = up ? 'up' : 'down';
        },
      ),
    };
    /** Decoding one frame; the newest frame that arrived meanwhile waits here. */
    this.decoding = false;
    /** @type {{ bytes: Uint8Array, mime: string } | undefined} */
    this.pending = undefined;
  }

  /** @param {string} transport @param {string} variant */
  showChoice(transport, variant) {
    this.ui.transport.value = transport;
    this.ui.variant.value = variant;
  }

  /** @param {boolean} up */
  setUp(up) {
    this.cells.up(up);
  }

  /** @param {string} state */
  setState(state) {
    this.cells.state(state);
  }

  /** @param {'speech' | 'silence'} state @param {number | null} dbfs */
  setVad(state, dbfs) {
    this.ui.vad.dataset.vad = state;
    this.ui.vad.title = `voice: ${state}${dbfs === null ? '' : ` (${dbfs.toFixed(1)} dBFS)`}`;
  }

  /** @param {TileSnapshot} s */
  render(s) {
    const c = this.cells;
    c.state(s.state);
    c.overlay(s.overlay);
    c.fps(s.fps);
    c.latency(s.latency);
    c.drops(s.drops);
    c.size(s.size);
    c.malformed(s.malformed);
    c.malformedDetail(s.malformedDetail);
    c.error(s.error);
    for (const [key, value] of Object.entries(s.data)) {
      let cell = this.dataCells.get(key);
      if (!cell) {
        cell = changes(
          /** @param {string} v */ (v) => {
            this.el.dataset[key] = v;
          },
        );
        this.dataCells.set(key, cell);
      }
      cell(value);
    }
  }

  /** Drops a frame still waiting to be drawn (the tile changed connection). */
  clearPending() {
    this.pending = undefined;
  }

  /**
   * Decodes off the main thread with createImageBitmap and paints; while one frame decodes,
   * only the newest one waits, so a slow decoder skips frames instead of queueing them.
   * @param {Uint8Array} bytes
   * @param {string} mime
   * @param {(width: number, height: number) => void} onPainted
   * @param {(message: string) => void} onError
   */
  draw(bytes, mime, onPainted, onError) {
    if (this.decoding) {
      this.pending = { bytes, mime };
      return;
    }
    this.decoding = true;
    createImageBitmap(new Blob([/** @type {Uint8Array<ArrayBuffer>} */ (bytes)], { type: mime }))
      .then((bmp) => {
        const c = this.ui.canvas;
        if (c.width !== bmp.width || c.height !== bmp.height) {
          c.width = bmp.width;
          c.height = bmp.height;
        }
        this.ctx2d.drawImage(bmp, 0, 0);
        onPainted(bmp.width, bmp.height);
        bmp.close();
      })
      .catch((/** @type {unknown} */ err) => onError(`decode: ${err instanceof Error ? err.message : err}`))
      .finally(() => {
        this.decoding = false;
        const next = this.pending;
        this.pending = undefined;
        if (next) this.draw(next.bytes, next.mime, onPainted, onError);
      });
  }
}
