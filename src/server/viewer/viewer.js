// @ts-check
/**
 * framehub camera wall, page entry: reads the URL parameters, builds the wall, and runs its
 * timers. Plain browser ES modules, no build step; `tsc -p src/server/viewer/tsconfig.json`
 * type-checks them. The modules, in js/: lists (variants, transports), records (wire record
 * types and checks), transport (the transport contract) with ws-, sse-, mjpeg- and
 * mse-transport and the transports registry, tile and tile-view, wall and grid. MSE plays
 * live H.264 with mse-player, whose decisions (codecs, capture times, live edge) are in
 * live-edge.js; video-records and video-stats read and count it.
 *
 * URL parameters (all optional):
 *   ?token=<jwt>             sent as WS subprotocol, SSE ?token=, MJPEG and API Authorization header
 *   ?transport=ws|sse|mjpeg|mse  initial transport of every tile (default ws); mse plays the
 *                            camera's live H.264 (cam/<id>/video) in a <video>, whatever the
 *                            variant; a camera without video shows the server's error
 *   ?variant=auto|low|…      initial variant of every tile (default auto)
 *   ?cameras=a,b             camera ids to show (needed when the token is not admin: the camera
 *                            list comes from api/v1/status, which is admin-only with auth on)
 *
 * Each tile element carries its state for scripts and tests: data-camera, data-transport,
 * data-variant, data-state (idle|connecting|live|stalled|retrying), data-frames, data-seq
 * (newest frame), data-drops (seq gaps between live frames), data-painted (frames drawn),
 * data-retries, data-vad-events,
 * data-width and data-height (the decoded size), data-active-variant (the concrete variant
 * shown, which `auto` picks), data-malformed and data-malformed-kinds (input the page could
 * not use, e.g. "frame:2 undecodable:1"). The voice dot is `.vad[data-vad=unknown|speech|silence]`,
 * fed by cam/<id>/vad: WS and SSE tiles subscribe on their own connection; MJPEG tiles
 * share one page-level WS. #wall carries data-fit (fill|scroll) and data-malformed (the
 * shared event socket's).
 *
 * MSE tiles also carry data-media="video" and, for the current connection or since the page
 * loaded: data-video-frames (frames presented, from requestVideoFrameCallback), data-latency-ms
 * (the newest presented frame's capture → display latency), data-first-picture-ms (from the
 * transport's open to its first presented frame; empty until then), data-video-skips (seq
 * jumps: the server skipped a slow viewer to a keyframe) and data-video-resets (the player
 * started over). Their data-state is `error` when the server refused the video topic (no
 * video on that camera, or no codec this browser plays). A script can read every latency
 * since its last call with framehubWall.tiles.get(id).video.drainLatencies().
 *
 * Every URL is relative to the page, so the wall works under a proxy's path prefix.
 */
import { find } from './js/dom.js';
import { pick, TRANSPORTS, VARIANTS } from './js/lists.js';
import { relativeUrl } from './js/net.js';
import { Wall } from './js/wall.js';

/** How often stats, stall and dead-connection checks run. */
const TICK_MS = 500;

const params = new URLSearchParams(location.search);
const wall = new Wall(
  {
    wall: find(document, '#wall', HTMLElement),
    template: find(document, '#tile-template', HTMLTemplateElement),
    summary: find(document, '#summary', HTMLElement),
    notice: find(document, '#notice', HTMLElement),
    warning: find(document, '#warning', HTMLElement),
    allTransport: find(document, '#all-transport', HTMLSelectElement),
    allVariant: find(document, '#all-variant', HTMLSelectElement),
  },
  {
    token: params.get('token') ?? '',
    transport: pick(params.get('transport'), TRANSPORTS, 'ws'),
    variant: pick(params.get('variant'), VARIANTS, 'auto'),
    only: (params.get('cameras') ?? '').split(',').filter(Boolean),
    url: (path, query) => relativeUrl(path, document.baseURI, query),
  },
);

setInterval(() => wall.tick(Date.now()), TICK_MS);
addEventListener('resize', () => wall.layout());
wall.pollStatus();

// For the console: framehubWall.tiles.get('demo').set('sse', 'low')
Object.assign(globalThis, { framehubWall: wall });
