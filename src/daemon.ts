import uWS from 'uWebSockets.js';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Config } from './config/schema.js';
import { Hub } from './hub/hub.js';
import { FRAME_VARIANTS } from './image/variants.js';
import { CameraSupervisor } from './ingest/camera-supervisor.js';
import type { Logger } from './log.js';
import { findClockFont, resolveFfmpegPath } from './media/ffmpeg-path.js';
import { createMetrics } from './metrics/metrics.js';
import { packageRoot } from './paths.js';
import { decode, type FrameRecord } from './pool/records.js';
import { WorkerPool } from './pool/worker-pool.js';
import { registerHttpRoutes } from './server/http.js';
import { createWsEndpoint } from './server/ws.js';

export interface Daemon {
  url: string;
  port: number;
  stop(): Promise<void>;
}

const version = (JSON.parse(readFileSync(join(packageRoot, 'package.json'), 'utf8')) as { version: string })
  .version;

/**
 * Wires config into running parts: metrics, hub, worker pool, uWS app, camera supervisors.
 * Everything with a lifecycle is started here and stopped in reverse order by stop().
 */
export async function startDaemon(config: Config, log: Logger): Promise<Daemon> {
  const metrics = createMetrics();
  const hub = new Hub(new Set(config.cameras.map((c) => c.id)), metrics);
  let ready = false;

  const pool = new WorkerPool({
    ...config.pool,
    log,
    metrics,
    onRecord: (bytes) => {
      const record = decode(bytes) as FrameRecord;
      if (record.type === 'frame') hub.publishFrame(bytes, record);
    },
  });

  const app = uWS.App();
  const ws = createWsEndpoint(app, hub, metrics, { ...config.ws, maxTopicsPerConnection: 64 });
  hub.addSink(ws.sink);
  registerHttpRoutes(app, { metrics, isReady: () => ready, version });

  const listenSocket = await new Promise<uWS.us_listen_socket>((resolve, reject) => {
    app.listen(config.host, config.port, (socket) =>
      socket ? resolve(socket) : reject(new Error(`cannot listen on ${config.host}:${config.port}`)),
    );
  });
  const port = uWS.us_socket_local_port(listenSocket);
  const url = `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${port}`;

  const ffmpegPath = resolveFfmpegPath(config.ffmpegPath);
  const clockFont = findClockFont();
  const cameras = config.cameras.map((cam) => {
    let seq = 0;
    const supervisor = new CameraSupervisor(cam, {
      ffmpegPath,
      clockFont,
      log,
      metrics,
      onFrame: (jpeg, ts) => {
        // A private ArrayBuffer the worker can take by transfer; the pipe's Buffer is pooled.
        const owned = new ArrayBuffer(jpeg.byteLength);
        new Uint8Array(owned).set(jpeg);
        pool.submitFrame({
          camera: cam.id,
          seq: ++seq,
          ts,
          width: cam.width,
          height: cam.height,
          jpeg: owned,
          variants: [...FRAME_VARIANTS],
        });
      },
    });
    supervisor.start();
    return supervisor;
  });

  ready = true;
  log.info(
    { url, host: config.host, port, cameras: config.cameras.map((c) => c.id), threads: pool.threads },
    'listening',
  );

  return {
    url,
    port,
    async stop() {
      ready = false;
      uWS.us_listen_socket_close(listenSocket);
      ws.closeAll();
      await Promise.all(cameras.map((c) => c.stop()));
      await pool.close();
      app.close();
    },
  };
}
