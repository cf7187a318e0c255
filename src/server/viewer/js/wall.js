// @ts-check
/**
 * The wall: one tile per camera (from the status API, or from `?cameras=`), the bulk
 * transport and variant selects, the page summary and warnings, and a grid that fills the
 * window. Timers live in viewer.js; this module only reacts.
 */
import { changes, fillSelect } from './dom.js';
import { EventSocket } from './event-socket.js';
import { fmtMs } from './format.js';
import { fitGrid } from './grid.js';
import { TRANSPORTS, transportLabel, VARIANTS } from './lists.js';
import { MalformedCount } from './malformed.js';
import { backoffDelay, describeHttpError } from './net.js';
import { Tile } from './tile.js';

const STATUS_POLL_MS = 5_000;
/** Browsers open at most 6 HTTP/1.1 connections per host; every SSE or MJPEG tile holds one. */
const HTTP_STREAMS_PER_HOST = 6;

/**
 * @typedef {object} WallElements
 * @property {HTMLElement} wall
 * @property {HTMLTemplateElement} template
 * @property {HTMLElement} summary
 * @property {HTMLElement} notice
 * @property {HTMLElement} warning
 * @property {HTMLSelectElement} allTransport
 * @property {HTMLSelectElement} allVariant
 */

/**
 * @typedef {object} WallOptions
 * @property {string} token
 * @property {import('./lists.js').TransportName} transport  initial transport of every tile
 * @property {import('./lists.js').Variant} variant  initial variant of every tile
 * @property {string[]} only  camera ids from ?cameras= (empty: every camera)
 * @property {(path: string, query?: Record<string, string>) => URL} url
 */

/** What /api/v1/status answers, as far as the wall reads it. */
/**
 * @typedef {object} StatusBody
 * @property {{ id: string, up: boolean }[]} cameras
 * @property {{ ws?: number, sse?: number, mjpeg?: number }} [viewers]
 * @property {string} version
 * @property {number} uptimeSeconds
 */

export class Wall {
  /** @param {WallElements} els @param {WallOptions} opts */
  constructor(els, opts) {
    this.els = els;
    this.opts = opts;
    /** @type {Map<string, Tile>} camera id → tile */
    this.tiles = new Map();
    /** The shared event socket's (MJPEG tiles' voice dots); each tile counts its own. */
    this.malformed = new MalformedCount(() => "the page's event socket");
    this.events = new EventSocket(opts.url, opts.token, (kind, detail) => {
      this.malformed.add(kind, detail);
      els.wall.dataset.malformed = String(this.malformed.total);
      els.wall.dataset.malformedKinds = this.malformed.summary();
    });
    this.statusAttempt = 0;
    this.summary = changes(
      /** @param {string} v */ (v) => {
        els.summary.textContent = v;
      },
    );
    this.notice = changes(
      /** @param {string} v */ (v) => {
        els.notice.textContent = v;
      },
    );
    this.warning = changes(
      /** @param {string} v */ (v) => {
        els.warning.textContent = v;
      },
    );
    this.grid = changes(
      /** @param {string} v */ (v) => {
        const [cols, rows, fit] = v.split(' ');
        els.wall.style.setProperty('--cols', cols ?? '1');
        els.wall.style.setProperty('--rows', rows ?? '1');
        els.wall.dataset.fit = fit ?? 'scroll';
      },
    );
    this.onScreen =
      typeof IntersectionObserver === 'function'
        ? new IntersectionObserver((entries) => {
            for (const e of entries) {
              const tile = this.tiles.get(/** @type {HTMLElement} */ (e.target).dataset.camera ?? '');
              if (tile) tile.visible = e.isIntersecting;
            }
          })
        : undefined;
    this.bindBulkSelect(els.allTransport, TRANSPORTS, transportLabel, (tile, v) => tile.set(v, tile.variant));
    this.bindBulkSelect(
      els.allVariant,
      VARIANTS,
      (v) => v,
      (tile, v) => tile.set(tile.transport, v),
    );
  }

  /**
   * @param {HTMLSelectElement} select
   * @param {readonly string[]} values
   * @param {(value: string) => string} label
   * @param {(tile: Tile, value: string) => void} apply
   */
  bindBulkSelect(select, values, label, apply) {
    fillSelect(select, values, label);
    select.addEventListener('change', () => {
      for (const tile of this.tiles.values()) apply(tile, select.value);
      select.value = '';
    });
  }

  /** @param {string} camera */
  addTile(camera) {
    const existing = this.tiles.get(camera);
    if (existing) return existing;
    const { template } = this.els;
    const { url, token, transport, variant } = this.opts;
    const tile = new Tile({ template, url, token, events: this.events }, camera, transport, variant);
    this.tiles.set(camera, tile);
    this.els.wall.append(tile.el);
    this.onScreen?.observe(tile.el);
    this.layout();
    tile.set(transport, variant);
    return tile;
  }

  /** Picks the grid for the current tile count and window size. */
  layout() {
    const { wall } = this.els;
    const style = getComputedStyle(wall);
    const width =
      wall.clientWidth - Number.parseFloat(style.paddingLeft) - Number.parseFloat(style.paddingRight);
    const height =
      wall.clientHeight - Number.parseFloat(style.paddingTop) - Number.parseFloat(style.paddingBottom);
    const { cols, rows, fill } = fitGrid(this.tiles.size, width, height);
    this.grid(`${cols} ${rows} ${fill ? 'fill' : 'scroll'}`);
  }

  /** Every tick: tiles update their stats, the wall its warning. @param {number} now */
  tick(now) {
    let streams = 0;
    for (const tile of this.tiles.values()) {
      tile.tick(now);
      if (tile.transport === 'sse' || tile.transport === 'mjpeg') streams++; // ws and mse share no HTTP slot
    }
    this.warning(
      streams >= HTTP_STREAMS_PER_HOST
        ? `${streams} SSE/MJPEG tiles: the browser allows ${HTTP_STREAMS_PER_HOST} HTTP connections per host, ` +
            'so some of them (and the camera list) will wait. Use WS for big walls.'
        : '',
    );
  }

  /** Reads the camera list and daemon summary, then schedules the next poll. */
  async pollStatus() {
    const { only, token } = this.opts;
    let delay = STATUS_POLL_MS;
    try {
      const res = await fetch(this.opts.url('api/v1/status'), {
        headers: token ? { Authorization: `Bearer ${token}` } : {},
        cache: 'no-store',
      });
      if (!res.ok) throw new StatusError(res.status, `status API: ${await describeHttpError(res)}`);
      const status = /** @type {StatusBody} */ (await res.json());
      this.statusAttempt = 0;
      this.notice('');
      const cams = status.cameras.filter((c) => only.length === 0 || only.includes(c.id));
      for (const c of cams) this.addTile(c.id).setUp(c.up);
      const v = status.viewers ?? {};
      this.summary(
        `${cams.length} camera${cams.length === 1 ? '' : 's'} · daemon viewers: ws ${v.ws ?? 0}, ` +
          `sse ${v.sse ?? 0}, mjpeg ${v.mjpeg ?? 0} · v${status.version} · up ${fmtMs(status.uptimeSeconds * 1000)}`,
      );
    } catch (err) {
      // The status API is admin-only once auth is on: a viewer token gets 401/403 for good.
      const denied = err instanceof StatusError && (err.status === 401 || err.status === 403);
      const message = err instanceof Error ? err.message : String(err);
      delay = denied ? 60_000 : backoffDelay(this.statusAttempt++);
      for (const id of only) this.addTile(id);
      this.summary(only.length ? `${only.length} camera(s) from ?cameras=` : 'no camera list');
      if (denied && only.length) this.notice('');
      else if (denied)
        this.notice(
          `${message}: the camera list needs an admin token${token ? '' : ' (?token=…)'}; ` +
            'or name cameras with ?cameras=a,b.',
        );
      else this.notice(`${message}; retrying in ${fmtMs(delay)}.`);
    }
    setTimeout(() => this.pollStatus(), delay);
  }
}

class StatusError extends Error {
  /** @param {number} status @param {string} message */
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}
