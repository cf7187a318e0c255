import uWS from 'uWebSockets.js';
import {
  announce,
  asPublishRecord,
  baselineOptions,
  HEALTH,
  Latest,
  packr,
  pongFor,
  topicsFromQuery,
} from './common.js';

/**
 * Reference server 1: bare uWebSockets.js. Frames are encoded once and fanned out by
 * `app.publish` in C++, with uWS's own per-socket backpressure limit and nothing else.
 * framehub's cost over this is the cost of its features.
 */
const opts = baselineOptions();
const latest = new Latest(opts);
const app = uWS.App();

app.ws<{ topics: string[] }>('/publish', {
  maxPayloadLength: 16 * 1024 * 1024,
  idleTimeout: 120,
  message: (ws, message, isBinary) => {
    if (!isBinary) return;
    // uWS reuses `message` after this callback returns; the JPEG must outlive it.
    const value = packr.unpack(new Uint8Array(message.slice(0)));
    const pong = pongFor(value);
    if (pong) return void ws.send(pong, true);
    const r = asPublishRecord(value);
    if (!r) return;
    const { topic, record } = latest.accept(r);
    app.publish(topic, record, true);
  },
});

app.ws<{ topics: string[] }>('/ws', {
  maxPayloadLength: 64 * 1024,
  maxBackpressure: opts.maxBackpressure,
  idleTimeout: 60,
  sendPingsAutomatically: true,
  upgrade: (res, req, context) => {
    res.upgrade(
      { topics: topicsFromQuery(req.getQuery()) },
      req.getHeader('sec-websocket-key'),
      req.getHeader('sec-websocket-protocol'),
      req.getHeader('sec-websocket-extensions'),
      context,
    );
  },
  open: (ws) => {
    for (const topic of ws.getUserData().topics) {
      ws.subscribe(topic);
      const record = latest.records.get(topic);
      if (record) ws.send(record, true);
    }
  },
});

app.get('/healthz', (res) => {
  res.cork(() => {
    res.writeStatus('200 OK').writeHeader('Content-Type', 'application/json').end(HEALTH());
  });
});

app.get('/cams/:camera/raw.jpg', (res, req) => {
  const jpeg = latest.jpegs.get(req.getParameter(0) ?? '');
  res.cork(() => {
    if (!jpeg) res.writeStatus('404 Not Found').end();
    else res.writeHeader('Content-Type', 'image/jpeg').end(jpeg);
  });
});

app.any('/*', (res) => {
  res.cork(() => {
    res.writeStatus('404 Not Found').end();
  });
});

app.listen('127.0.0.1', opts.port, (socket) => {
  if (!socket) {
    process.stderr.write(`uws-bare: cannot listen on port ${opts.port}\n`);
    process.exit(1);
  }
  announce('uws-bare', uWS.us_socket_local_port(socket));
  process.once('SIGTERM', () => {
    uWS.us_listen_socket_close(socket);
    app.close();
    process.exit(0);
  });
});
