import type { HttpResponse, TemplatedApp } from 'uWebSockets.js';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { Metrics } from '../metrics/metrics.js';
import { packageRoot } from '../paths.js';
import { handleAsync, sendError, sendJson } from './http-util.js';

export interface HttpDeps {
  metrics: Metrics;
  isReady: () => boolean;
  version: string;
}

const require = createRequire(import.meta.url);

/** Files served as-is, read once at start-up. */
function staticFiles(): Map<string, { body: Buffer; type: string }> {
  const viewer = join(packageRoot, 'src', 'server', 'viewer');
  return new Map([
    ['/', { body: readFileSync(join(viewer, 'index.html')), type: 'text/html; charset=utf-8' }],
    ['/viewer.js', { body: readFileSync(join(viewer, 'viewer.js')), type: 'text/javascript; charset=utf-8' }],
    [
      '/vendor/msgpackr.js',
      {
        // msgpackr's browser build, so the page decodes the same records as every other client.
        body: readFileSync(join(dirname(require.resolve('msgpackr')), 'index-no-eval.min.js')),
        type: 'text/javascript; charset=utf-8',
      },
    ],
  ]);
}

export function registerHttpRoutes(app: TemplatedApp, deps: HttpDeps): void {
  const files = staticFiles();

  app.get('/healthz', (res) => sendJson(res, 200, { status: 'ok', version: deps.version }));
  app.get('/readyz', (res) =>
    deps.isReady()
      ? sendJson(res, 200, { status: 'ready' })
      : sendError(res, 503, 'NOT_READY', 'starting or draining'),
  );
  app.get('/metrics', (res) =>
    handleAsync(res, async (isAborted) => {
      const body = await deps.metrics.registry.metrics();
      if (isAborted()) return;
      res.cork(() => {
        res.writeHeader('Content-Type', deps.metrics.registry.contentType).end(body);
      });
    }),
  );
  for (const [path, file] of files) {
    app.get(path, (res) => serveFile(res, file));
  }
  app.any('/*', (res, req) =>
    sendError(res, 404, 'NOT_FOUND', `no route for ${req.getCaseSensitiveMethod()} ${req.getUrl()}`),
  );
}

function serveFile(res: HttpResponse, file: { body: Buffer; type: string }): void {
  res.cork(() => {
    res.writeHeader('Content-Type', file.type).writeHeader('Cache-Control', 'no-cache').end(file.body);
  });
}
