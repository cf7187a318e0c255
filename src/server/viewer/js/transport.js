// @ts-check
/**
 * The contract between a tile and a transport module.
 *
 * A transport module exports one `open(host)` function. It connects at once, reports what
 * it receives through `host`, and returns a `Connection` the tile closes when the user picks
 * another transport or variant, or when it retries. The tile owns everything else: backoff,
 * stall and dead-connection timers, statistics, drawing and the DOM. So a transport knows
 * only how to connect, how to decode its wire format, and how to close.
 *
 * `host` belongs to one connection attempt: once the tile has moved on (closed it, or
 * retried), every call on it is ignored, so a late callback from an old socket can never
 * touch the new one's state.
 *
 * To add a transport: add its name to `TRANSPORTS` in lists.js, write `<name>-transport.js`
 * exporting `open`, and register it in transports.js; the type check fails until all three
 * agree. `mse` is the one that plays video: it gets the tile's <video> through `host.video`
 * (the others ignore it) and reports fragments and presented frames there.
 *
 * @typedef {object} TransportHost
 * @property {string} camera
 * @property {import('./lists.js').Variant} variant  as requested: may be `auto`
 * @property {string} frameTopic  `cam/<id>/<variant>`, as requested (`cam/<id>/video` for `mse`)
 * @property {string} vadTopic    `cam/<id>/vad`
 * @property {number | undefined} vadSeq  seq of the last VAD event seen, to resume after a reconnect
 * @property {string | undefined} vadEpoch  the server process that seq came from (its `epoch`):
 *   a resume names it, so after a daemon restart the server replays history and sends `gap`
 *   instead of skipping the new process's first events
 * @property {(path: string, query?: Record<string, string>) => URL} url
 *   A same-origin URL relative to the page, so a proxy's path prefix is kept. Empty query
 *   values are left out.
 * @property {string} token
 *   The page's token, or ''. Each transport sends it the way it can: a WS subprotocol entry,
 *   `?token=` for EventSource, an Authorization header for fetch.
 * @property {() => void} alive  anything arrived, keep-alives included
 * @property {(frame: import('./records.js').FrameIn) => void} frame
 * @property {(rec: import('./records.js').VadRecord) => void} vad
 * @property {(epoch: string) => void} epoch  the server's epoch, from `hello` (WS) or an event id (SSE)
 * @property {(rec: import('./records.js').VariantRecord) => void} variantChanged  `auto` switched variant
 * @property {(rec: import('./records.js').ErrorRecord) => void} serverError  an `error` record; the connection stays up
 * @property {(kind: string, detail: string) => void} malformed
 *   Something arrived that is not a record the page understands. `kind` groups them
 *   (`undecodable`, `frame`, `vad`, `unknown type`, …) for the count and the console.
 * @property {(reason: string, explainUrl?: string) => void} fail
 *   The connection is gone or was refused. The tile closes it and retries with backoff; with
 *   `explainUrl` it also asks that URL once for the server's JSON error, for transports
 *   (EventSource) that cannot see the HTTP status themselves.
 *
 * @property {VideoOutput} video  where a video transport plays and reports
 *
 * @typedef {object} VideoOutput
 * @property {HTMLVideoElement} element  the tile's <video>: the transport attaches a MediaSource
 *   to it and lets go of it on close
 * @property {(rec: import('./video-records.js').VideoInit) => void} init  a (new) stream: its size and codec
 * @property {(rec: import('./video-records.js').VideoFragment) => void} fragment
 *   a fragment arrived: counted like a frame (fps, drops, stall) and for seq skips
 * @property {(p: import('./mse-player.js').Presented) => void} presented  a frame reached the screen
 * @property {(reason: string) => void} reset  the player started over and waits for a keyframe
 *
 * @typedef {object} Connection
 * @property {() => void} close  stops everything the transport started; calls nothing on host afterwards
 * @property {() => void} [ping]  asks the server for a sign of life on a quiet connection (WS only)
 *
 * @typedef {(host: TransportHost) => Connection} OpenTransport
 */
export {};
