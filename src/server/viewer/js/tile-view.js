// @ts-check
/**
 * A tile's DOM: built from the page's <template>, written only where a value changed, and
 * its canvas painted from JPEG bytes, or, on the `mse` transport, its <video> played by the
 * transport (`data-media="video"` on the tile shows the one and hides the other). Everything
 * a test or script reads is a data attribute on the tile element (see viewer.js).
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
      video: find(root, 'video', HTMLVideoElement),
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
    ui.video.setAttribute('aria-label', `camera ${camera} video`);
    // The attribute sets only the default; autoplay needs the element itself muted.
    ui.video.muted = true;
    /** The latency's explanation, per kind of transport (MSE measures to the screen). */
    this.latencyTitle = ui.latency.parentElement?.title ?? '';
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

  /**
   * The selects show the choice; an `mse` tile shows its <video>, and its variant select is
   * off, since MSE plays the camera's one H.264 stream whatever the variant.
   * @param {string} transport @param {string} variant
   */
  showChoice(transport, variant) {
    const ui = this.ui;
    const mse = transport === 'mse';
    ui.transport.value = transport;
    ui.variant.value = variant;
    ui.variant.disabled = mse;
    ui.variant.title = mse
      ? "MSE plays the camera's H.264 stream (cam/<id>/video): variants apply to WS, SSE and MJPEG"
      : '';
    this.el.dataset.media = mse ? 'video' : 'picture';
    const latency = ui.latency.parentElement;
    if (latency)
      latency.title = mse
        ? 'capture → display of presented frames (requestVideoFrameCallback), mean over the last 2 s'
        : this.latencyTitle;
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
