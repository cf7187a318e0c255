import type { HttpResponse, TemplatedApp } from 'uWebSockets.js';
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, extname, join, sep } from 'node:path';
import { FramehubError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics/metrics.js';
import { packageRoot } from '../paths.js';
import { handleAsync, sendJson } from './http-util.js';
import { pageSecurityHeaders } from './page-headers.js';

export interface HttpDeps {
  metrics: Metrics;
  log: Logger;
  isReady: () => boolean;
  /** Whether the cluster bus is up; while it is down the node still serves (`degraded`, 200). */
  busUp?: () => boolean;
  version: string;
}

const require = createRequire(import.meta.url);

interface StaticFile {
  body: Buffer;
  /** Every response header but the length, Content-Type first. */
  headers: [string, string][];
}

const TYPES: Record<string, string> = {
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
};

/** `nosniff` on every file: a script or page is only ever used as the type it was served with. */
const COMMON_HEADERS: [string, string][] = [
  ['Cache-Control', 'no-cache'],
  ['X-Content-Type-Options', 'nosniff'],
];

/**
 * The camera wall, read once at start-up: the page at `/`, and every `.js` and `.css` file of
 * the viewer directory (its ES modules under `js/` included) at its path relative to the page.
 * Routes are exact paths taken from the directory listing, so no request path ever reaches the
 * file system.
 */
function staticFiles(): Map<string, StaticFile> {
  const viewer = join(packageRoot, 'src', 'server', 'viewer');
  const html = readFileSync(join(viewer, 'index.html'));
  const files = new Map<string, StaticFile>([
    [
      '/',
      {
        body: html,
        headers: [
          ['Content-Type', 'text/html; charset=utf-8'],
          ...COMMON_HEADERS,
          ...Object.entries(pageSecurityHeaders(html.toString('utf8'))),
        ],
      },
    ],
  ]);
  const add = (route: string, file: string) => {
    const type = TYPES[extname(file)];
    if (type)
      files.set(route, { body: readFileSync(file), headers: [['Content-Type', type], ...COMMON_HEADERS] });
  };
  for (const entry of readdirSync(viewer, { recursive: true, encoding: 'utf8' })) {
    add(`/${entry.split(sep).join('/')}`, join(viewer, entry));
  }
  // msgpackr's browser build, so the page decodes the same records as every other client.
  add('/vendor/msgpackr.js', join(dirname(require.resolve('msgpackr')), 'index-no-eval.min.js'));
  return files;
}

export function registerHttpRoutes(app: TemplatedApp, deps: HttpDeps): void {
  const files = staticFiles();

  app.get('/healthz', (res) => sendJson(res, 200, { status: 'ok', version: deps.version }));
  app.get('/readyz', (res) => {
    if (!deps.isReady()) throw new FramehubError('NOT_READY', 'starting or draining', 503);
    // Still 200 while Redis is away: this node keeps serving its own cameras to its viewers, so
    // a load balancer must not take it out; `degraded` tells an operator remote cameras are off.
    sendJson(res, 200, deps.busUp?.() === false ? { status: 'degraded', bus: 'down' } : { status: 'ready' });
  });
  app.get('/metrics', (res) =>
    handleAsync(deps, res, async (isAborted) => {
      const body = await deps.metrics.registry.metrics();
      if (isAborted()) return;
      res.cork(() => {
        res
          .writeHeader('Content-Type', deps.metrics.registry.contentType)
          .writeHeader('X-Content-Type-Options', 'nosniff')
          .end(body);
      });
    }),
  );
  for (const [path, file] of files) {
    app.get(path, (res) => serveFile(res, file));
  }
  app.any('/*', (_res, req) => {
    // The path is the client's: cut short, and JSON-encoded like every error body.
    const path = req.getUrl().slice(0, 200);
    throw new FramehubError(
      'NOT_FOUND',
      `no route for ${req.getCaseSensitiveMethod().slice(0, 16)} ${path}`,
      404,
    );
  });
}

function serveFile(res: HttpResponse, file: StaticFile): void {
  res.cork(() => {
    for (const [name, value] of file.headers) res.writeHeader(name, value);
    res.end(file.body);
  });
}
