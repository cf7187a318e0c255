// @ts-check
/**
 * Routes one decoded record (WS msgpack or SSE JSON) to the tile. Shared by the transports
 * that carry records, so WS and SSE check fields the same way. DOM-free.
 */
import { IGNORED_TYPES, isObject, readError, readFrameFields, readVad, readVariant } from './records.js';

/**
 * @param {import('./transport.js').TransportHost} host
 * @param {unknown} value  the decoded record
 * @param {(data: unknown) => Uint8Array | undefined} frameBytes  the JPEG from the frame's `data`, if well-formed
 */
export function dispatchRecord(host, value, frameBytes) {
  if (!isObject(value) || typeof value.type !== 'string') {
    host.malformed('not a record', 'a message that is not a map with a string "type"');
    return;
  }
  switch (value.type) {
    case 'frame': {
      const fields = readFrameFields(value);
      if (typeof fields === 'string') return host.malformed('frame', fields);
      const bytes = frameBytes(value.data);
      if (!bytes) return host.malformed('frame', 'frame without JPEG data');
      return host.frame({ ...fields, bytes });
    }
    case 'vad': {
      const rec = readVad(value);
      return typeof rec === 'string' ? host.malformed('vad', rec) : host.vad(rec);
    }
    case 'variant': {
      const rec = readVariant(value);
      return typeof rec === 'string' ? host.malformed('variant', rec) : host.variantChanged(rec);
    }
    case 'hello':
      // The server's reply to the transport's hello: remember its epoch for the next resume.
      if (typeof value.epoch === 'string') host.epoch(value.epoch.slice(0, 32));
      return;
    case 'error': {
      const rec = readError(value);
      return typeof rec === 'string' ? host.malformed('error', rec) : host.serverError(rec);
    }
    default:
      if (!IGNORED_TYPES.has(value.type)) host.malformed('unknown type', `type ${value.type.slice(0, 40)}`);
  }
}
