import { FramehubError } from '../errors.js';

/** Printable ASCII but space and comma, which delimit the header. */
const METADATA_KEY = /^[\x21-\x2b\x2d-\x7e]+$/;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Upload-Metadata: comma-separated `key base64value` pairs (the value and its space may be left
 * out), each value UTF-8 text. Refused with 400 `INVALID_FIELD` as a whole when over `maxBytes`,
 * when a key repeats or has a character outside printable ASCII, or a value is not canonical
 * base64 of UTF-8: the values become job options, so nothing half-parsed goes through.
 *
 * @example
 *   parseMetadata('filename d29ybGQuanBn,is_confidential', 4096) // { filename: 'world.jpg', is_confidential: '' }
 */
export function parseMetadata(header: string, maxBytes: number): Record<string, string> {
  const bad = (why: string) => new FramehubError('INVALID_FIELD', `Upload-Metadata: ${why}`, 400);
  if (header === '') return {};
  if (Buffer.byteLength(header) > maxBytes) throw bad(`over ${maxBytes} bytes`);
  const entries = new Map<string, string>();
  for (const pair of header.split(',')) {
    const [key = '', value = '', ...rest] = pair.trim().split(' ');
    if (rest.length > 0) throw bad('a pair is a key, a space and one base64 value');
    // `__proto__` would be dropped by an object assignment on reload; refusing it is simpler.
    if (!METADATA_KEY.test(key) || key === '__proto__') throw bad('a key is empty or not printable ASCII');
    if (entries.has(key)) throw bad('a key repeats');
    if (!BASE64.test(value)) throw bad(`the value of ${key} is not base64`);
    try {
      entries.set(key, utf8.decode(Buffer.from(value, 'base64')));
    } catch {
      throw bad(`the value of ${key} is not UTF-8 text`);
    }
  }
  return Object.fromEntries(entries);
}

/**
 * The header HEAD answers with: parseMetadata's inverse (a key with an empty value goes out
 * bare), so `parseMetadata(encodeMetadata(m), Infinity)` is `m`.
 */
export function encodeMetadata(metadata: Readonly<Record<string, string>>): string {
  return Object.entries(metadata)
    .map(([key, value]) => (value === '' ? key : `${key} ${Buffer.from(value).toString('base64')}`))
    .join(',');
}
