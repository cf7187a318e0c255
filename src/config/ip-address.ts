/**
 * IPv4 and IPv6 addresses and networks, strictly parsed, for `trustProxy` (checked at start-up)
 * and the client address of a proxied request (src/server/client-address.ts). Pure: no node
 * APIs, so the config can validate with it and the server can match with it.
 *
 * Every address is held as 16 bytes, an IPv4 address as its IPv4-mapped IPv6 form
 * (`::ffff:a.b.c.d`): one comparison serves both families, and a dual-stack socket's
 * `::ffff:127.0.0.1` is the same client as `127.0.0.1`. Strict on purpose: no zone ids
 * (`fe80::1%eth0`), no short or octal IPv4 (`127.1`, `010.0.0.1`), which resolvers read in
 * different ways, so a header cannot name one address that a limit counts as another.
 */

/** An address: 16 bytes, IPv4 as `::ffff:a.b.c.d`. */
export type IpBytes = Uint8Array;

/** A network: the address with its host bits zero, and the prefix length over the 16 bytes (IPv4 /8 is 104). */
export interface IpNetwork {
  readonly bytes: IpBytes;
  readonly prefix: number;
}

/** Longest address text there is: `ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255` (45). */
const MAX_ADDRESS_CHARS = 45;
const V4_PART = /^(0|[1-9][0-9]{0,2})$/;
const V6_GROUP = /^[0-9a-fA-F]{1,4}$/;

/**
 * The 16 bytes of an IPv4 (`a.b.c.d`) or IPv6 address, or undefined for anything else
 * (brackets, ports and zone ids included: strip them first).
 *
 * @example
 *   formatIp(parseIp('::FFFF:7f00:1')!) // '127.0.0.1'
 */
export function parseIp(text: string): IpBytes | undefined {
  if (text.length === 0 || text.length > MAX_ADDRESS_CHARS) return undefined;
  if (!text.includes(':')) {
    const v4 = parseV4(text);
    if (!v4) return undefined;
    const bytes = new Uint8Array(16);
    bytes[10] = 0xff;
    bytes[11] = 0xff;
    bytes.set(v4, 12);
    return bytes;
  }
  return parseV6(text);
}

function parseV4(text: string): number[] | undefined {
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  const out: number[] = [];
  for (const part of parts) {
    if (!V4_PART.test(part)) return undefined;
    const n = Number(part);
    if (n > 255) return undefined;
    out.push(n);
  }
  return out;
}

function parseV6(text: string): IpBytes | undefined {
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const groupsOf = (half: string): number[] | undefined => {
    if (half === '') return [];
    const out: number[] = [];
    const parts = half.split(':');
    for (const [i, part] of parts.entries()) {
      // An IPv4 tail (`::ffff:1.2.3.4`) fills the last two groups.
      if (i === parts.length - 1 && part.includes('.')) {
        const v4 = parseV4(part);
        if (!v4) return undefined;
        out.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
      } else {
        if (!V6_GROUP.test(part)) return undefined;
        out.push(Number.parseInt(part, 16));
      }
    }
    return out;
  };
  const head = groupsOf(halves[0]!);
  const tail = halves.length === 2 ? groupsOf(halves[1]!) : [];
  if (!head || !tail) return undefined;
  // An IPv4 tail may only end the address, never sit before `::`.
  if (halves.length === 2 && halves[0]!.includes('.')) return undefined;
  const count = head.length + tail.length;
  if (halves.length === 1 ? count !== 8 : count > 7) return undefined;
  const groups = [...head, ...new Array<number>(8 - count).fill(0), ...tail];
  const bytes = new Uint8Array(16);
  groups.forEach((g, i) => {
    bytes[2 * i] = g >> 8;
    bytes[2 * i + 1] = g & 0xff;
  });
  return bytes;
}

/** True for `::ffff:a.b.c.d`, which is written (and counted) as the IPv4 address. */
function isV4Mapped(bytes: IpBytes): boolean {
  for (let i = 0; i < 10; i++) if (bytes[i] !== 0) return false;
  return bytes[10] === 0xff && bytes[11] === 0xff;
}

/**
 * The one text of an address: dotted IPv4 for IPv4 and IPv4-mapped IPv6, RFC 5952 for the
 * rest (lower case, no leading zeros, the longest run of two or more zero groups as `::`).
 */
export function formatIp(bytes: IpBytes): string {
  if (bytes.length === 4) return bytes.join('.');
  if (isV4Mapped(bytes)) return `${bytes[12]}.${bytes[13]}.${bytes[14]}.${bytes[15]}`;
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((bytes[i]! << 8) | bytes[i + 1]!);
  let best = -1;
  let bestLength = 1; // a single zero group is never compressed
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      best = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = (from: number, to: number) =>
    groups
      .slice(from, to)
      .map((g) => g.toString(16))
      .join(':');
  if (best < 0) return hex(0, 8);
  return `${hex(0, best)}::${hex(best + bestLength, 8)}`;
}

/** An address in its one text form, or undefined when `text` is not an address. */
export function canonicalIp(text: string): string | undefined {
  const bytes = parseIp(text);
  return bytes && formatIp(bytes);
}

/**
 * A `trustProxy` entry: an address, or a network as `address/prefix` (0 < prefix ≤ 32 for
 * IPv4, ≤ 128 for IPv6) whose host bits are zero. Returns the reason otherwise, for the
 * config error. A zero prefix is refused: it would trust every address, so any client could
 * name its own.
 *
 * @example
 *   parseNetwork('10.0.0.0/8')  // { bytes: ::ffff:10.0.0.0, prefix: 104 }
 *   parseNetwork('10.1.0.0/8')  // 'host bits are set: the network is 10.0.0.0/8'
 */
export function parseNetwork(text: string): IpNetwork | string {
  const slash = text.indexOf('/');
  const address = slash < 0 ? text : text.slice(0, slash);
  const bytes = parseIp(address);
  if (!bytes) return `"${text.slice(0, 64)}" is not an IPv4 or IPv6 address or address/prefix`;
  const v4 = !address.includes(':');
  const width = v4 ? 32 : 128;
  if (slash < 0) return { bytes, prefix: 128 };
  const prefixText = text.slice(slash + 1);
  if (!/^(0|[1-9][0-9]{0,2})$/.test(prefixText) || Number(prefixText) > width) {
    return `"${text.slice(0, 64)}": the prefix must be a whole number from 1 to ${width}`;
  }
  const prefix = Number(prefixText) + (v4 ? 96 : 0);
  if (Number(prefixText) === 0) {
    return `"${text}" trusts every address, so any client could choose its own: list the proxies' addresses or networks`;
  }
  const masked = mask(bytes, prefix);
  if (!sameBytes(masked, bytes)) {
    return `"${text}": host bits are set: the network is ${formatIp(masked)}/${prefixText}`;
  }
  // An IPv6 network as wide as ::ffff:0:0/96 (or ::/1) holds every IPv4 client too.
  const network = { bytes, prefix };
  if (inNetwork(FIRST_V4, network) && inNetwork(LAST_V4, network)) {
    return `"${text}" trusts every IPv4 address, so any client could choose its own: list the proxies' addresses or networks`;
  }
  return network;
}

const FIRST_V4 = Uint8Array.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 0]);
const LAST_V4 = Uint8Array.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);

function mask(bytes: IpBytes, prefix: number): IpBytes {
  const out = new Uint8Array(16);
  for (let i = 0; i < 16; i++) {
    const bits = Math.max(0, Math.min(8, prefix - 8 * i));
    out[i] = bytes[i]! & ((0xff << (8 - bits)) & 0xff);
  }
  return out;
}

function sameBytes(a: IpBytes, b: IpBytes): boolean {
  for (let i = 0; i < 16; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Whether `ip` lies in `network`. */
export function inNetwork(ip: IpBytes, network: IpNetwork): boolean {
  const whole = network.prefix >> 3;
  for (let i = 0; i < whole; i++) if (ip[i] !== network.bytes[i]) return false;
  const rest = network.prefix & 7;
  if (rest === 0) return true;
  const m = (0xff << (8 - rest)) & 0xff;
  return (ip[whole]! & m) === network.bytes[whole];
}
