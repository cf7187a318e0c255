// @ts-check
/**
 * Transport name → its module's `open`. Typed as a record over `TRANSPORTS`, so a name in
 * lists.js without a module here (or the reverse) fails the type check.
 */
import { open as openMjpeg } from './mjpeg-transport.js';
import { open as openMse } from './mse-transport.js';
import { open as openSse } from './sse-transport.js';
import { open as openWs } from './ws-transport.js';

/** @type {Record<import('./lists.js').TransportName, import('./transport.js').OpenTransport>} */
export const OPEN_TRANSPORT = { ws: openWs, sse: openSse, mjpeg: openMjpeg, mse: openMse };
