import type { HttpRequest, HttpResponse } from 'uWebSockets.js';
import {
  formatIp,
  type IpBytes,
  type IpNetwork,
  inNetwork,
  parseIp,
  parseNetwork,
} from '../config/ip-address.js';

/**
 * Who a request is from, behind a reverse proxy. The peer of a proxied request is the proxy,
 * so without this every viewer behind nginx is one IP, and per-IP limits become a site-wide
 * limit. The client address is read from forwarding headers only when the peer is a proxy the
 * operator trusts (`trustProxy`): anyone else could write those headers and pick any address.
 * README "Behind a reverse proxy" documents the rules below.
 */

/**
 * The most of a header (all of one name together) looked at: the rightmost part of a longer
 * `X-Forwarded-For` (where the proxies wrote), and none of a longer `Forwarded` (its quotes
 * cannot be read from the middle), whose client is then the peer.
 */
export const MAX_FORWARDING_CHARS = 4096;
/** Hops looked at, from the right: a chain of trusted proxies longer than this ends at its 16th. */
export const MAX_HOPS = 16;
/** Longest hop text looked at: an IPv6 address in brackets with a port is at most 53. */
const MAX_HOP_CHARS = 64;

/** The `trustProxy` list, and whether the operator lets its requests be admin with auth off. */
export class ProxyTrust {
  private readonly networks: IpNetwork[];

  /** `list` was validated at start-up (config/schema.ts); an entry that does not parse is skipped. */
  constructor(
    list: readonly string[],
    /** `authOffTrustsProxy`: a request through a trusted proxy keeps the anonymous admin. */
    readonly authOffTrustsProxy = false,
  ) {
    this.networks = list.flatMap((entry) => {
      const network = parseNetwork(entry);
      return typeof network === 'string' ? [] : [network];
    });
  }

  /** False when no proxy is trusted: forwarding headers are then never read. */
  get any(): boolean {
    return this.networks.length > 0;
  }

  trusts(ip: IpBytes): boolean {
    for (const network of this.networks) if (inNetwork(ip, network)) return true;
    return false;
  }

  /**
   * With auth off, may a request that came through a proxy (`relayedBy` its peer) be the
   * anonymous admin? Only if the operator opted in and the peer is a trusted proxy.
   */
  vouchesFor(relayedBy: string): boolean {
    if (!this.authOffTrustsProxy) return false;
    const peer = parseIp(relayedBy);
    return peer !== undefined && this.trusts(peer);
  }
}

/** The forwarding headers of a request: each name's values joined with commas, in order. */
export interface ForwardingHeaders {
  /** `X-Forwarded-For`, or '' when absent. */
  forwardedFor: string;
  /** `Forwarded` (RFC 7239), or '' when absent. */
  forwarded: string;
}

/**
 * The client's address (in canonical text, see formatIp). `peer` is the TCP peer; its
 * forwarding headers count only when `trust` trusts it. Then, walking `X-Forwarded-For` from
 * the right (several headers are one comma list, in order): each hop a trusted proxy wrote is
 * skipped, and the first address not trusted is the client. A hop that is not an address
 * (`unknown`, garbage, an empty entry) ends the walk, and the last trusted address seen (the
 * proxy that wrote it) is the client: that proxy did not know better, and nothing left of it
 * was written by anyone trusted. If every hop is trusted, the leftmost is the client. Without
 * `X-Forwarded-For`, `Forwarded: for=` is walked the same way (quoted IPv6 in brackets, ports,
 * `unknown` and `_obfuscated` identifiers, which end the walk). At most MAX_FORWARDING_CHARS
 * of a header and MAX_HOPS hops are looked at, so a hostile header costs a bounded amount of
 * work. Never throws.
 *
 * @example
 *   const trust = new ProxyTrust(['127.0.0.1']);
 *   clientAddress('127.0.0.1', { forwardedFor: '6.6.6.6, 203.0.113.9', forwarded: '' }, trust) // '203.0.113.9'
 *   clientAddress('192.0.2.1', { forwardedFor: '6.6.6.6', forwarded: '' }, trust)             // '192.0.2.1'
 */
export function clientAddress(peer: string, headers: ForwardingHeaders, trust: ProxyTrust): string {
  if (!trust.any) return peer;
  const peerBytes = parseIp(peer);
  if (!peerBytes || !trust.trusts(peerBytes)) return peer;
  let hops: Iterable<string | undefined>;
  if (headers.forwardedFor.trim() !== '') {
    const text = headers.forwardedFor;
    // The part cut off on the left ends the walk (forwardedForHops): it is not a whole hop.
    const cut = text.length > MAX_FORWARDING_CHARS;
    hops = forwardedForHops(cut ? text.slice(-MAX_FORWARDING_CHARS) : text, cut);
  } else {
    if (headers.forwarded.length > MAX_FORWARDING_CHARS) return peer;
    hops = parseForwarded(headers.forwarded).reverse();
  }
  let client = peer;
  let walked = 0;
  for (const hop of hops) {
    if (walked++ === MAX_HOPS) break;
    const ip = hop === undefined ? undefined : parseHop(hop);
    if (!ip) break;
    client = formatIp(ip);
    if (!trust.trusts(ip)) break;
  }
  return client;
}

/**
 * X-Forwarded-For entries, rightmost first, without splitting the whole header; the leftmost
 * is undefined when the text was `cut` from a longer header.
 */
function* forwardedForHops(text: string, cut: boolean): Generator<string | undefined> {
  let end = text.length;
  for (;;) {
    // lastIndexOf reads a negative start as 0, so the first entry is found by hand.
    const comma = end === 0 ? -1 : text.lastIndexOf(',', end - 1);
    yield comma < 0 && cut ? undefined : text.slice(comma + 1, end);
    if (comma < 0) return;
    end = comma;
  }
}

const TCHAR = /[!#$%&'*+\-.^_`|~0-9A-Za-z]/;

/**
 * The `for=` values of RFC 7239 `Forwarded` elements, left to right (quotes hide commas);
 * undefined for an element that is malformed or has no (or two) `for`.
 */
export function parseForwarded(text: string): (string | undefined)[] {
  const out: (string | undefined)[] = [];
  let i = 0;
  const skipSpace = () => {
    while (text[i] === ' ' || text[i] === '\t') i++;
  };
  const token = (): string => {
    const start = i;
    while (i < text.length && TCHAR.test(text[i]!)) i++;
    return text.slice(start, i);
  };
  /** A quoted-string's content, or undefined when it never ends. */
  const quoted = (): string | undefined => {
    i++; // the opening quote
    let value = '';
    while (i < text.length) {
      const c = text[i++]!;
      if (c === '"') return value;
      if (c === '\\') {
        if (i >= text.length) return undefined;
        value += text[i++];
      } else value += c;
    }
    return undefined;
  };
  /** After an error: on to the next comma outside quotes. */
  const skipElement = () => {
    let inQuotes = false;
    while (i < text.length) {
      const c = text[i]!;
      if (inQuotes && c === '\\') i++;
      else if (c === '"') inQuotes = !inQuotes;
      else if (c === ',' && !inQuotes) return;
      i++;
    }
  };
  const element = (): string | undefined => {
    let forValue: string | undefined;
    let fors = 0;
    for (;;) {
      skipSpace();
      if (i >= text.length || text[i] === ',') break;
      const name = token();
      if (name === '' || text[i] !== '=') return undefined;
      i++;
      const value = text[i] === '"' ? quoted() : token();
      if (value === undefined || value === '') return undefined;
      if (name.toLowerCase() === 'for') {
        forValue = value;
        fors++;
      }
      skipSpace();
      if (text[i] === ';') i++;
      else if (i < text.length && text[i] !== ',') return undefined;
    }
    return fors === 1 ? forValue : undefined;
  };
  for (;;) {
    const value = element();
    if (value === undefined) skipElement();
    out.push(value);
    if (i >= text.length) return out;
    i++; // the comma
  }
}

/**
 * One hop's address: `1.2.3.4`, `1.2.3.4:80`, `2001:db8::1`, `[2001:db8::1]`,
 * `[2001:db8::1]:443`, with spaces around; a port may be an RFC 7239 `_obfuscated` one.
 * undefined for anything else.
 */
export function parseHop(raw: string): IpBytes | undefined {
  const hop = raw.trim();
  if (hop.length === 0 || hop.length > MAX_HOP_CHARS) return undefined;
  const port = /^(?:[0-9]{1,5}|_[A-Za-z0-9._-]{1,32})$/;
  if (hop.startsWith('[')) {
    const close = hop.indexOf(']');
    if (close < 0) return undefined;
    const inner = hop.slice(1, close);
    const after = hop.slice(close + 1);
    if (!inner.includes(':')) return undefined; // only IPv6 goes in brackets
    if (after !== '' && !(after.startsWith(':') && port.test(after.slice(1)))) return undefined;
    return parseIp(inner);
  }
  const colon = hop.indexOf(':');
  // One colon: IPv4 with a port. More: bare IPv6, which cannot carry a port.
  if (colon >= 0 && colon === hop.lastIndexOf(':')) {
    if (!port.test(hop.slice(colon + 1))) return undefined;
    const ip = hop.slice(0, colon);
    return ip.includes('.') ? parseIp(ip) : undefined;
  }
  return parseIp(hop);
}

/**
 * True when the request names a proxy it came through: any `X-Forwarded-For`, `Forwarded` or
 * `Via` header, even an empty one. Every occurrence is looked at (getHeader sees only the
 * first): a client's empty first header must not hide the one its proxy appended.
 */
export function isRelayed(req: HttpRequest): boolean {
  let relayed = false;
  req.forEach((key) => {
    if (key === 'x-forwarded-for' || key === 'forwarded' || key === 'via') relayed = true;
  });
  return relayed;
}

/**
 * The forwarding headers of a uWS request, every occurrence (uWS's getHeader gives only the
 * first). Read synchronously, before any await: uWS frees the request after the handler.
 */
export function readForwarding(req: HttpRequest): ForwardingHeaders {
  let forwardedFor = '';
  let forwarded = '';
  // Only the right end counts (proxies append), so a later header is never dropped; what is
  // kept is bounded to one character past the cap, which tells clientAddress it was cut.
  const join = (list: string, value: string) => {
    const joined = list === '' ? value : `${list},${value}`;
    return joined.length > MAX_FORWARDING_CHARS + 1 ? joined.slice(-(MAX_FORWARDING_CHARS + 1)) : joined;
  };
  req.forEach((key, value) => {
    if (key === 'x-forwarded-for') forwardedFor = join(forwardedFor, value);
    else if (key === 'forwarded') forwarded = join(forwarded, value);
  });
  return { forwardedFor, forwarded };
}

/**
 * The TCP peer's address in canonical text (formatIp). uWS's getRemoteAddressAsText gives a
 * dual-stack socket's IPv4 peer as `0000:0000:0000:0000:0000:ffff:7f00:0001` and an IPv6 one
 * uncompressed; the bytes give one text per address, so a per-IP limit keys each peer once.
 */
export function peerAddress(res: HttpResponse): string {
  const bytes = new Uint8Array(res.getRemoteAddress().slice(0));
  if (bytes.length === 4 || bytes.length === 16) return formatIp(bytes);
  return Buffer.from(res.getRemoteAddressAsText()).toString(); // not an IP socket: as uWS says it
}

/**
 * The address every per-IP limit, connect-rate bucket and log uses for this request: the
 * peer, or, when the peer is a trusted proxy, the client its forwarding headers name
 * (clientAddress). Read synchronously from the uWS request. `trust` undefined trusts nobody.
 */
export function requestAddress(res: HttpResponse, req: HttpRequest, trust: ProxyTrust | undefined): string {
  const peer = peerAddress(res);
  if (!trust?.any) return peer;
  return clientAddress(peer, readForwarding(req), trust);
}
