import http from 'node:http';
import { WebSocket, WebSocketServer } from 'ws';
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
 * Reference server 2: the common Node stack, `ws` on `node:http`, fanning out with a JS loop
 * over each topic's subscribers. A viewer whose buffer is over the limit skips the frame, as
 * in framehub, so a slow viewer cannot grow memory without bound.
 */
const opts = baselineOptions();
const latest = new Latest(opts);
const subscribers = new Map<string, Set<WebSocket>>();

const server = http.createServer((req, res) => {
  const url = req.url ?? '/';
  if (url === '/healthz') {
    res.writeHead(200, { 'Content-Type': 'application/json' }).end(HEALTH());
    return;
  }
  const jpg = /^\/cams\/([a-z0-9][a-z0-9_-]{0,63})\/raw\.jpg$/.exec(url);
  const jpeg = jpg ? latest.jpegs.get(jpg[1]!) : undefined;
  if (jpeg) res.writeHead(200, { 'Content-Type': 'image/jpeg' }).end(jpeg);
  else res.writeHead(404).end();
});
server.keepAliveTimeout = 60_000;

const viewers = new WebSocketServer({ noServer: true, maxPayload: 64 * 1024 });
const publishers = new WebSocketServer({ noServer: true, maxPayload: 16 * 1024 * 1024 });

server.on('upgrade', (req, socket, head) => {
  const [path, query] = (req.url ?? '').split('?', 2);
  if (path === '/ws') {
    viewers.handleUpgrade(req, socket, head, (ws) => onViewer(ws, topicsFromQuery(query)));
  } else if (path === '/publish') {
    publishers.handleUpgrade(req, socket, head, onPublisher);
  } else {
    socket.destroy();
  }
});

function onViewer(ws: WebSocket, topics: string[]): void {
  for (const topic of topics) {
    const set = subscribers.get(topic) ?? new Set<WebSocket>();
    subscribers.set(topic, set);
    set.add(ws);
    const record = latest.records.get(topic);
    if (record) ws.send(record, { binary: true });
  }
  ws.on('close', () => {
    for (const topic of topics) subscribers.get(topic)?.delete(ws);
  });
  ws.on('error', () => ws.terminate());
}

function onPublisher(ws: WebSocket): void {
  ws.on('message', (data: Buffer, isBinary) => {
    if (!isBinary) return;
    const value = packr.unpack(data);
    const pong = pongFor(value);
    if (pong) return void ws.send(pong, { binary: true });
    const r = asPublishRecord(value);
    if (!r) return;
    const { topic, record } = latest.accept(r);
    const set = subscribers.get(topic);
    if (!set) return;
    for (const viewer of set) {
      if (viewer.readyState === WebSocket.OPEN && viewer.bufferedAmount <= opts.maxBackpressure) {
        viewer.send(record, { binary: true });
      }
    }
  });
}

// Pings like uWS's sendPingsAutomatically, so idle viewers are kept the same way.
const pinger = setInterval(() => {
  for (const ws of viewers.clients) ws.ping();
}, 30_000);
pinger.unref();

server.listen(opts.port, '127.0.0.1', () => {
  const addr = server.address();
  announce('ws-http', typeof addr === 'object' && addr ? addr.port : opts.port);
});
process.once('SIGTERM', () => {
  for (const ws of viewers.clients) ws.terminate();
  server.close();
  process.exit(0);
});
