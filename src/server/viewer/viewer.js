// framehub camera wall: one tile per camera, each with its own transport (WS, SSE, MJPEG) and
// variant (auto, low, medium, high, raw), live fps / latency / drops, and reconnects with
// capped exponential backoff plus jitter. Plain browser JS, no build step.
//
// URL parameters (all optional):
//   ?token=<jwt>             passed on as WS subprotocol, SSE/MJPEG ?token=, API Authorization header
//   ?transport=ws|sse|mjpeg  initial transport of every tile (default ws)
//   ?variant=auto|low|…      initial variant of every tile (default auto)
//   ?cameras=a,b             camera ids to show (needed when the token is not admin: the camera
//                            list comes from /api/v1/status, which is admin-only with auth on)
//
// Each tile element carries its state for scripts and tests: data-camera, data-transport,
// data-variant, data-state (idle|connecting|live|stalled|retrying), data-frames, data-seq,
// data-drops, data-retries, data-vad-events, data-width and data-height (the decoded size), and
// data-active-variant (what `auto` picked; WS/SSE only). The voice dot is
// `.vad[data-vad=unknown|speech|silence]`, fed by cam/<id>/vad: WS and SSE tiles subscribe on
// their own connection; MJPEG tiles share one page-level WS for events.
//
// MJPEG plays in a plain <img>, which in Chromium fires "load" for the first frame only and
// exposes no seq or timestamp: its fps is estimated by sampling the picture, latency and drops
// show n/a (with a tooltip), and a picture that stops changing for 6 s counts as a dead stream.

const { unpack } = globalThis.msgpackr;
const packr = new globalThis.msgpackr.Packr({ useRecords: false });
const pack = (record) => packr.pack(record);

const TRANSPORTS = ['ws', 'sse', 'mjpeg'];
const VARIANTS = ['auto', 'low', 'medium', 'high', 'raw'];
const params = new URLSearchParams(location.search);
const TOKEN = params.get('token') || '';
const pick = (value, allowed, fallback) => (allowed.includes(value) ? value : fallback);
const DEFAULT_TRANSPORT = pick(params.get('transport'), TRANSPORTS, 'ws');
const DEFAULT_VARIANT = pick(params.get('variant'), VARIANTS, 'auto');

const BACKOFF_BASE_MS = 500;
const BACKOFF_MAX_MS = 15_000;
/** A connection that delivered something and then stayed up this long resets the backoff. */
const STABLE_MS = 5_000;
/** Connected but no frame for this long: the tile shows "stalled". */
const STALL_MS = 3_000;
/** Connected but nothing at all for this long: reconnect (WS also pings before that). */
// MJPEG: an <img> reports neither the end of the stream nor errors after the first frame,
// so a picture that stops changing is the only sign of a dead stream.
const DEAD_MS = { ws: 20_000, sse: 40_000, mjpeg: 6_000 };
const WS_PING_AFTER_MS = 8_000;
/** Sliding window for fps and latency. */
const WINDOW_MS = 2_000;
const TICK_MS = 500;
const MJPEG_SAMPLE_MS = 50;
const STATUS_POLL_MS = 5_000;

const MJPEG_NA =
  'An <img> playing MJPEG fires "load" for the first frame only and exposes no seq or timestamp, ' +
  'so latency and drops cannot be measured; fps is estimated by sampling the picture 20×/s for changes.';

// ---------------------------------------------------------------------------------------------
// helpers

/** Capped exponential backoff with "equal jitter": half fixed, half random. */
function backoffDelay(attempt) {
  const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** attempt);
  return Math.round(ceiling / 2 + Math.random() * (ceiling / 2));
}

/** Same-origin URL with query parameters; adds ?token= when the page has one. */
function urlFor(path, query = {}, withToken = true) {
  const u = new URL(path, location.href);
  for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== '') u.searchParams.set(k, v);
  if (withToken && TOKEN) u.searchParams.set('token', TOKEN);
  return u;
}

function wsUrl(query) {
  const u = urlFor('/ws', query, false);
  u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
  return u.href;
}

/** Browsers cannot set headers on WebSocket: the token rides in a subprotocol entry. */
const wsProtocols = () => (TOKEN ? ['framehub', `framehub.bearer.${TOKEN}`] : undefined);

function base64ToBytes(b64) {
  if (typeof Uint8Array.fromBase64 === 'function') return Uint8Array.fromBase64(b64);
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/**
 * EventSource and <img> say nothing about why they failed: ask the same URL once, read the
 * JSON error body (DESIGN.md "Errors"), and abort at once if it turns out to be streaming.
 */
async function explainFailure(url) {
  const ctl = new AbortController();
  try {
    const res = await fetch(url, { signal: ctl.signal, cache: 'no-store' });
    if (res.ok) return '';
    const body = await res.json().catch(() => undefined);
    const err = body?.error;
    return `HTTP ${res.status}${err ? ` ${err.code}: ${err.message}` : ''}`;
  } catch {
    return 'server unreachable';
  } finally {
    ctl.abort();
  }
}

const fmtMs = (ms) =>
  ms >= 10_000
    ? `${(ms / 1000).toFixed(0)} s`
    : ms >= 1000
      ? `${(ms / 1000).toFixed(1)} s`
      : `${Math.round(ms)} ms`;

// ---------------------------------------------------------------------------------------------
// page-level event socket: VAD for tiles whose transport carries no events (MJPEG)

class EventSocket {
  constructor() {
    /** topic → Set of handlers */
    this.handlers = new Map();
    this.ws = undefined;
    this.attempt = 0;
    this.timer = undefined;
  }

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

  remove(topic, handler) {
    const set = this.handlers.get(topic);
    if (!set) return;
    set.delete(handler);
    if (set.size) return;
    this.handlers.delete(topic);
    this.send({ type: 'unsub', topics: [topic] });
    if (this.handlers.size === 0) this.close();
  }

  send(record) {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(pack(record));
  }

  ensure() {
    if (this.ws || this.timer || this.handlers.size === 0) return;
    const ws = new WebSocket(wsUrl({ topics: [...this.handlers.keys()].join(',') }), wsProtocols());
    ws.binaryType = 'arraybuffer';
    this.ws = ws;
    // Topics added while connecting: (re)subscribe them all; the server ignores repeats.
    ws.onopen = () => this.send({ type: 'sub', topics: [...this.handlers.keys()] });
    ws.onmessage = (ev) => {
      this.attempt = 0;
      let rec;
      try {
        rec = unpack(new Uint8Array(ev.data));
      } catch {
        return;
      }
      for (const h of this.handlers.get(rec.topic) ?? []) h(rec);
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

  close() {
    clearTimeout(this.timer);
    this.timer = undefined;
    const ws = this.ws;
    this.ws = undefined;
    ws?.close();
  }
}

const events = new EventSocket();

// ---------------------------------------------------------------------------------------------
// tiles

const template = document.getElementById('tile-template');

class Tile {
  constructor(camera, transport, variant) {
    this.camera = camera;
    this.transport = transport;
    this.variant = variant;
    this.el = template.content.firstElementChild.cloneNode(true);
    const $ = (sel) => this.el.querySelector(sel);
    this.ui = {
      name: $('.name'),
      up: $('.up'),
      vad: $('.vad'),
      transport: $('select.transport'),
      variant: $('select.variant'),
      canvas: $('canvas'),
      img: $('img'),
      overlay: $('.overlay'),
      fps: $('.fps'),
      latency: $('.latency'),
      drops: $('.drops'),
      size: $('.size'),
      err: $('.err'),
    };
    this.el.dataset.camera = camera;
    this.ui.name.textContent = camera;
    this.ui.img.alt = `camera ${camera}`;
    this.ui.canvas.setAttribute('aria-label', `camera ${camera}`);
    this.ctx2d = this.ui.canvas.getContext('2d');
    this.ui.transport.value = transport;
    this.ui.variant.value = variant;
    this.ui.transport.addEventListener('change', () => this.set(this.ui.transport.value, this.variant));
    this.ui.variant.addEventListener('change', () => this.set(this.transport, this.ui.variant.value));

    /** Bumped on every (re)connect; callbacks from older connections check it and bail out. */
    this.gen = 0;
    this.conn = undefined;
    this.attempt = 0;
    /** Retries scheduled since the page loaded (data-retries). */
    this.retries = 0;
    this.retryTimer = undefined;
    this.retryAt = 0;
    this.state = 'idle';
    this.error = '';
    this.vadHandler = (rec) => this.onVad(rec);
    /** seq of the last cam/<id>/vad event seen, to resume events missed while reconnecting. */
    this.vadSeq = undefined;
    /** Off-screen tiles (big walls) and hidden pages keep their stats but skip decoding. */
    this.visible = true;
    this.resetStats();
  }

  resetStats() {
    this.frames = 0;
    this.drops = 0;
    this.lastSeq = new Map();
    this.window = [];
    this.seq = undefined;
    this.width = 0;
    this.height = 0;
    this.activeVariant = '';
    this.connectedAt = 0;
    this.lastFrameAt = 0;
    this.lastMessageAt = 0;
    this.sampleKey = undefined;
    this.vadEvents = 0;
  }

  set(transport, variant) {
    transport = pick(transport, TRANSPORTS, this.transport);
    variant = pick(variant, VARIANTS, this.variant);
    if (transport === this.transport && variant === this.variant && this.state !== 'idle') return;
    this.transport = transport;
    this.variant = variant;
    this.ui.transport.value = transport;
    this.ui.variant.value = variant;
    this.attempt = 0;
    this.resetStats();
    this.connect();
    this.tick(Date.now());
  }

  get frameTopic() {
    return `cam/${this.camera}/${this.variant}`;
  }

  get vadTopic() {
    return `cam/${this.camera}/vad`;
  }

  // --- connection lifecycle ---------------------------------------------------------------

  connect() {
    this.disconnect();
    const gen = ++this.gen;
    this.setState('connecting');
    this.connectedAt = Date.now();
    this.lastMessageAt = Date.now();
    this.lastSeq.clear();
    this.ui.canvas.hidden = this.transport === 'mjpeg';
    this.ui.img.hidden = this.transport !== 'mjpeg';
    // WS and SSE tiles carry their own cam/<id>/vad subscription; MJPEG tiles share a page socket.
    if (this.transport === 'mjpeg') events.add(this.vadTopic, this.vadHandler);
    else events.remove(this.vadTopic, this.vadHandler);
    if (this.transport === 'ws') this.conn = this.openWs(gen);
    else if (this.transport === 'sse') this.conn = this.openSse(gen);
    else this.conn = this.openMjpeg(gen);
  }

  disconnect() {
    this.gen++;
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    this.conn?.close();
    this.conn = undefined;
    this.pending = undefined;
  }

  /** Drops the current connection and schedules the next try. */
  retry(gen, reason) {
    if (gen !== this.gen) return;
    this.disconnect();
    if (reason) this.error = reason;
    const delay = backoffDelay(this.attempt++);
    this.retries++;
    this.retryAt = Date.now() + delay;
    this.setState('retrying');
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.connect();
    }, delay);
    this.tick(Date.now());
  }

  /** Replaces a tile's vague error with the server's reason, if it still applies. */
  explain(url, label) {
    const gen = this.gen;
    explainFailure(url).then((reason) => {
      if (reason && gen === this.gen) this.error = `${label}: ${reason}`;
    });
  }

  /** Called on every message; the first after a stable period resets the backoff. */
  alive(gen) {
    this.lastMessageAt = Date.now();
    if (this.attempt && Date.now() - this.connectedAt > STABLE_MS) this.attempt = 0;
    if (gen === this.gen && this.state === 'connecting') this.setState('live');
  }

  openWs(gen) {
    const ws = new WebSocket(wsUrl({ topics: `${this.frameTopic},${this.vadTopic}` }), wsProtocols());
    ws.binaryType = 'arraybuffer';
    // Resume VAD events missed while away (frames always restart at the newest one).
    ws.onopen = () => {
      if (this.vadSeq !== undefined)
        ws.send(pack({ type: 'hello', resume: { [this.vadTopic]: this.vadSeq } }));
    };
    ws.onmessage = (ev) => {
      if (gen !== this.gen) return;
      this.alive(gen);
      let rec;
      try {
        rec = unpack(new Uint8Array(ev.data));
      } catch (err) {
        this.error = `bad message: ${err.message}`;
        return;
      }
      if (rec.type === 'frame') this.onFrame(rec, rec.data);
      else if (rec.type === 'vad') this.onVad(rec);
      else if (rec.type === 'variant') this.onVariant(rec);
      else if (rec.type === 'error') this.error = `${rec.code}: ${rec.message}`;
    };
    ws.onclose = (ev) => this.retry(gen, `ws closed ${ev.code}${ev.reason ? ` ${ev.reason}` : ''}`);
    return {
      close: () => {
        ws.onopen = null;
        ws.onmessage = null;
        ws.onclose = null;
        ws.close();
      },
      ping: () => {
        if (ws.readyState === WebSocket.OPEN) ws.send(pack({ type: 'ping', id: Date.now() }));
      },
    };
  }

  openSse(gen) {
    const query = { topics: `${this.frameTopic},${this.vadTopic}` };
    // Resume VAD events missed while away (frames always restart at the newest one).
    if (this.vadSeq !== undefined) query.lastEventId = `${this.vadTopic}:${this.vadSeq}`;
    const url = urlFor('/sse', query);
    const es = new EventSource(url);
    let opened = false;
    const on = (type, fn) =>
      es.addEventListener(type, (ev) => {
        if (gen !== this.gen) return;
        this.alive(gen);
        let rec;
        try {
          rec = JSON.parse(ev.data);
        } catch {
          return;
        }
        fn(rec, ev);
      });
    on('frame', (rec) => this.onFrame(rec, rec.data ? base64ToBytes(rec.data) : undefined));
    on('vad', (rec) => this.onVad(rec));
    on('variant', (rec) => this.onVariant(rec));
    es.onopen = () => {
      opened = true;
      if (gen === this.gen) this.alive(gen);
    };
    // EventSource would retry on its own at a fixed pace, and gives up for good on an HTTP
    // error: close it and do our own backoff instead.
    es.onerror = () => {
      if (gen !== this.gen) return;
      this.retry(gen, opened ? 'sse connection lost' : 'sse failed to open');
      if (!opened) this.explain(url, 'sse');
    };
    return { close: () => es.close() };
  }

  openMjpeg(gen) {
    const img = this.ui.img;
    img.onload = () => {
      // Chromium fires this once, for the first part of the multipart stream.
      if (gen !== this.gen) return;
      this.alive(gen);
    };
    const url = urlFor(`/cams/${this.camera}/${this.variant}.mjpeg`).href;
    img.onerror = () => {
      if (gen !== this.gen) return;
      this.retry(gen, 'mjpeg stream failed');
      this.explain(url, 'mjpeg');
    };
    img.src = url;
    return {
      close: () => {
        img.onload = null;
        img.onerror = null;
        // Clearing src is what makes Chromium close the multipart connection.
        img.removeAttribute('src');
      },
    };
  }

  // --- records ------------------------------------------------------------------------------

  onFrame(rec, bytes) {
    const now = Date.now();
    const prev = this.lastSeq.get(rec.topic);
    if (prev !== undefined && rec.seq > prev + 1) this.drops += rec.seq - prev - 1;
    if (prev === undefined || rec.seq > prev) this.lastSeq.set(rec.topic, rec.seq);
    this.seq = rec.seq;
    this.frames++;
    this.lastFrameAt = now;
    this.window.push({ t: now, latency: now - rec.ts });
    // Frames arrive on the concrete topic, so this is what `auto` is showing right now.
    this.activeVariant = rec.topic.split('/')[2];
    if (this.state !== 'live') this.setState('live');
    if (bytes && this.visible && !document.hidden) this.draw(bytes, rec.mime || 'image/jpeg');
    else {
      this.width = rec.width;
      this.height = rec.height;
    }
  }

  /** `auto` switched variant: seq restarts on another topic, so gaps across the switch are no drops. */
  onVariant(rec) {
    this.activeVariant = rec.variant;
    this.lastSeq.clear();
  }

  /** Voice indicator hook: `cam/<id>/vad` events `{state:'speech'|'silence', dbfs, floor}`. */
  onVad(rec) {
    if (rec.state !== 'speech' && rec.state !== 'silence') return;
    if (Number.isInteger(rec.seq) && rec.topic === this.vadTopic) this.vadSeq = rec.seq;
    this.vadEvents++;
    this.ui.vad.dataset.vad = rec.state;
    const level = typeof rec.dbfs === 'number' ? ` (${rec.dbfs.toFixed(1)} dBFS)` : '';
    this.ui.vad.title = `voice: ${rec.state}${level}`;
  }

  // --- drawing ------------------------------------------------------------------------------

  /** Decodes off the main thread with createImageBitmap; the newest frame wins while one decodes. */
  draw(bytes, mime) {
    if (this.decoding) {
      this.pending = { bytes, mime };
      return;
    }
    this.decoding = true;
    const gen = this.gen;
    createImageBitmap(new Blob([bytes], { type: mime }))
      .then((bmp) => {
        if (gen === this.gen) this.paint(bmp);
        bmp.close();
      })
      .catch((err) => {
        this.error = `decode: ${err.message}`;
      })
      .finally(() => {
        this.decoding = false;
        const next = this.pending;
        this.pending = undefined;
        if (next && gen === this.gen) this.draw(next.bytes, next.mime);
      });
  }

  paint(bmp) {
    const c = this.ui.canvas;
    if (c.width !== bmp.width || c.height !== bmp.height) {
      c.width = bmp.width;
      c.height = bmp.height;
    }
    this.ctx2d.drawImage(bmp, 0, 0);
    this.width = bmp.width;
    this.height = bmp.height;
  }

  /** MJPEG: the only window on the stream is the picture itself; spot changes in a 16×9 thumbnail. */
  sampleMjpeg(probe) {
    const img = this.ui.img;
    if (this.transport !== 'mjpeg' || !this.conn || !img.naturalWidth) return;
    probe.drawImage(img, 0, 0, 16, 9);
    const px = probe.getImageData(0, 0, 16, 9).data;
    let h = 2166136261;
    for (let i = 0; i < px.length; i += 4)
      h = Math.imul(h ^ (px[i] + (px[i + 1] << 8) + (px[i + 2] << 16)), 16777619);
    this.width = img.naturalWidth;
    this.height = img.naturalHeight;
    if (h === this.sampleKey) return;
    this.sampleKey = h;
    const now = Date.now();
    this.frames++;
    this.lastFrameAt = now;
    this.window.push({ t: now });
    this.alive(this.gen);
    if (this.state !== 'live') this.setState('live');
  }

  // --- periodic upkeep ------------------------------------------------------------------------

  tick(now) {
    const cutoff = now - WINDOW_MS;
    while (this.window.length && this.window[0].t < cutoff) this.window.shift();
    const mjpeg = this.transport === 'mjpeg';

    // Hidden pages are not sampled: an MJPEG picture that is not looked at is not dead.
    if (mjpeg && (document.hidden || !this.visible)) this.lastMessageAt = now;
    if (this.conn && this.state !== 'retrying') {
      const quiet = now - this.lastMessageAt;
      if (quiet > DEAD_MS[this.transport]) {
        this.retry(this.gen, `no data for ${fmtMs(quiet)}`);
      } else {
        if (this.transport === 'ws' && quiet > WS_PING_AFTER_MS) this.conn.ping?.();
        const stalled = this.lastFrameAt
          ? now - this.lastFrameAt > STALL_MS
          : now - this.connectedAt > STALL_MS;
        if (stalled && this.state === 'live') this.setState('stalled');
        else if (!stalled && this.state === 'stalled') this.setState('live');
      }
    }

    const ui = this.ui;
    const n = this.window.length;
    const fps = n >= 2 ? ((n - 1) * 1000) / Math.max(1, this.window[n - 1].t - this.window[0].t) : 0;
    ui.fps.textContent = this.frames ? (mjpeg ? `~${fps.toFixed(1)}` : fps.toFixed(1)) : '–';
    ui.fps.parentElement.classList.toggle('na', mjpeg);
    ui.fps.parentElement.title = mjpeg
      ? MJPEG_NA
      : `frames received per second over the last ${WINDOW_MS / 1000} s`;
    for (const key of ['latency', 'drops']) {
      ui[key].parentElement.classList.toggle('na', mjpeg);
      ui[key].parentElement.title = mjpeg
        ? MJPEG_NA
        : key === 'latency'
          ? 'capture → display (Date.now() − ts), mean over the last 2 s'
          : 'frames the server skipped for this viewer (gaps in seq)';
    }
    if (mjpeg) {
      ui.latency.textContent = 'n/a';
      ui.drops.textContent = 'n/a';
    } else {
      const lat = this.window.filter((w) => w.latency !== undefined);
      ui.latency.textContent = lat.length ? fmtMs(lat.reduce((a, w) => a + w.latency, 0) / lat.length) : '–';
      ui.drops.textContent = this.frames ? String(this.drops) : '–';
    }
    const shownVariant =
      this.variant === 'auto'
        ? this.activeVariant && !mjpeg
          ? `auto→${this.activeVariant}`
          : 'auto'
        : this.variant;
    ui.size.textContent = this.width ? `${this.width}×${this.height} ${shownVariant}` : shownVariant;
    ui.err.textContent = this.state === 'live' ? '' : this.error;
    ui.err.title = this.error;

    let overlay = this.state;
    if (this.state === 'retrying')
      overlay = `retrying in ${fmtMs(Math.max(0, this.retryAt - now))} (attempt ${this.attempt})`;
    else if (this.state === 'stalled')
      overlay = `stalled: no frame for ${fmtMs(now - (this.lastFrameAt || this.connectedAt))}`;
    ui.overlay.textContent = overlay;

    const d = this.el.dataset;
    d.transport = this.transport;
    d.variant = this.variant;
    d.frames = String(this.frames);
    d.seq = this.seq === undefined ? '' : String(this.seq);
    d.drops = mjpeg ? '' : String(this.drops);
    d.retries = String(this.retries);
    d.vadEvents = String(this.vadEvents);
    d.width = String(this.width);
    d.height = String(this.height);
    d.activeVariant = mjpeg ? '' : this.activeVariant;
  }

  setState(state) {
    this.state = state;
    this.el.dataset.state = state;
  }

  setUp(up) {
    this.ui.up.dataset.up = String(up);
    this.ui.up.textContent = up ? 'up' : 'down';
  }
}

// ---------------------------------------------------------------------------------------------
// the wall

const wall = document.getElementById('wall');
const summary = document.getElementById('summary');
const notice = document.getElementById('notice');
/** camera id → Tile */
const tiles = new Map();
const onScreen =
  typeof IntersectionObserver === 'function'
    ? new IntersectionObserver((entries) => {
        for (const e of entries) {
          const tile = tiles.get(e.target.dataset.camera);
          if (tile) tile.visible = e.isIntersecting;
        }
      })
    : undefined;
const only = (params.get('cameras') ?? '').split(',').filter(Boolean);

function addTile(camera) {
  if (tiles.has(camera)) return tiles.get(camera);
  const tile = new Tile(camera, DEFAULT_TRANSPORT, DEFAULT_VARIANT);
  tiles.set(camera, tile);
  wall.append(tile.el);
  onScreen?.observe(tile.el);
  tile.set(tile.transport, tile.variant);
  return tile;
}

let statusAttempt = 0;
async function pollStatus() {
  let delay = STATUS_POLL_MS;
  try {
    const res = await fetch(urlFor('/api/v1/status', {}, false), {
      headers: TOKEN ? { Authorization: `Bearer ${TOKEN}` } : {},
      cache: 'no-store',
    });
    if (!res.ok) {
      const body = await res.json().catch(() => ({}));
      const err = new Error(`status API: HTTP ${res.status} ${body.error?.code ?? ''}`.trim());
      err.status = res.status;
      throw err;
    }
    const status = await res.json();
    statusAttempt = 0;
    notice.textContent = '';
    const cams = status.cameras.filter((c) => only.length === 0 || only.includes(c.id));
    for (const c of cams) addTile(c.id).setUp(c.up);
    const v = status.viewers ?? {};
    summary.textContent =
      `${cams.length} camera${cams.length === 1 ? '' : 's'} · daemon viewers: ws ${v.ws ?? 0}, ` +
      `sse ${v.sse ?? 0}, mjpeg ${v.mjpeg ?? 0} · v${status.version} · up ${fmtMs(status.uptimeSeconds * 1000)}`;
  } catch (err) {
    // The status API is admin-only once auth is on: a viewer token gets 401/403 for good.
    const denied = err.status === 401 || err.status === 403;
    delay = denied ? 60_000 : backoffDelay(statusAttempt++);
    for (const id of only) addTile(id);
    summary.textContent = only.length ? `${only.length} camera(s) from ?cameras=` : 'no camera list';
    if (denied && only.length) notice.textContent = '';
    else if (denied) {
      notice.textContent = `${err.message}: the camera list needs an admin token${
        TOKEN ? '' : ' (?token=…)'
      }; or name cameras with ?cameras=a,b.`;
    } else notice.textContent = `${err.message}; retrying in ${fmtMs(delay)}.`;
  }
  setTimeout(pollStatus, delay);
}

for (const [id, key] of [
  ['all-transport', 'transport'],
  ['all-variant', 'variant'],
]) {
  const select = document.getElementById(id);
  select.addEventListener('change', () => {
    for (const tile of tiles.values()) {
      tile.set(
        key === 'transport' ? select.value : tile.transport,
        key === 'variant' ? select.value : tile.variant,
      );
    }
    select.value = '';
  });
}

/** Browsers open at most 6 HTTP/1.1 connections per host; every SSE or MJPEG tile holds one. */
const HTTP_STREAMS_PER_HOST = 6;
const warning = document.getElementById('warning');

setInterval(() => {
  const now = Date.now();
  let streams = 0;
  for (const tile of tiles.values()) {
    tile.tick(now);
    if (tile.transport !== 'ws') streams++;
  }
  warning.textContent =
    streams >= HTTP_STREAMS_PER_HOST
      ? `${streams} SSE/MJPEG tiles: the browser allows ${HTTP_STREAMS_PER_HOST} HTTP connections per host, ` +
        'so some of them (and the camera list) will wait. Use WS for big walls.'
      : '';
}, TICK_MS);

const probeCanvas = document.createElement('canvas');
probeCanvas.width = 16;
probeCanvas.height = 9;
const probe = probeCanvas.getContext('2d', { willReadFrequently: true });
setInterval(() => {
  if (document.hidden) return;
  for (const tile of tiles.values()) if (tile.visible) tile.sampleMjpeg(probe);
}, MJPEG_SAMPLE_MS);

pollStatus();

// For the console: framehubWall.tiles.get('demo').set('sse', 'low')
globalThis.framehubWall = { tiles, events };
