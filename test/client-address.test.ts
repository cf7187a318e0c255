import uWS from 'uWebSockets.js';
import { connect, isIP } from 'node:net';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  canonicalIp,
  formatIp,
  type IpNetwork,
  inNetwork,
  parseIp,
  parseNetwork,
} from '../src/config/ip-address.js';
import { loadConfig } from '../src/config/load.js';
import {
  clientAddress,
  isRelayed,
  MAX_FORWARDING_CHARS,
  MAX_HOPS,
  ProxyTrust,
  parseForwarded,
  parseHop,
  peerAddress,
  requestAddress,
} from '../src/server/client-address.js';
import { catchError, writeConfig } from './helpers.js';

/** The networks most cases trust: the local proxy, a private range, and IPv6 loopback. */
const trust = new ProxyTrust(['127.0.0.1', '10.0.0.0/8', '::1']);
const PROXY = '127.0.0.1';

const xff = (forwardedFor: string) => ({ forwardedFor, forwarded: '' });
const fwd = (forwarded: string) => ({ forwardedFor: '', forwarded });

describe('addresses and networks (config/ip-address.ts)', () => {
  it.each([
    ['127.0.0.1', '127.0.0.1'],
    ['::ffff:127.0.0.1', '127.0.0.1'],
    ['0000:0000:0000:0000:0000:ffff:7f00:0001', '127.0.0.1'],
    ['0000:0000:0000:0000:0000:0000:0000:0001', '::1'],
    ['2001:DB8:0:0:0:0:0:1', '2001:db8::1'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['2001:0:0:1:0:0:0:1', '2001:0:0:1::1'],
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'],
    ['::', '::'],
    ['1::', '1::'],
  ])('reads %s as %s', (text, canonical) => {
    expect(canonicalIp(text)).toBe(canonical);
  });

  it.each([
    '',
    '127.1',
    '010.0.0.1',
    '256.0.0.1',
    '1.2.3.4.5',
    '1.2.3.4:80',
    '[::1]',
    'fe80::1%eth0',
    '1:2:3:4:5:6:7:8:9',
    '1::2::3',
    ':1',
    '1:',
    '1.2.3.4::',
    '12345::',
    ' 1.2.3.4',
    'unknown',
  ])('refuses %j', (text) => {
    expect(parseIp(text)).toBeUndefined();
  });

  it('formats every IPv6 address as WHATWG URL parsing does (RFC 5952), and reads it back', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), (bytes) => {
        const text = formatIp(bytes);
        expect(parseIp(text)).toEqual(bytes);
        const mapped = bytes.slice(0, 12).every((b, i) => b === (i < 10 ? 0 : 0xff));
        if (!mapped) expect(text).toBe(new URL(`http://[${text}]/`).hostname.slice(1, -1));
      }),
    );
  });

  it('accepts no text Node would not read as an address', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.stringMatching(/^[0-9a-fA-F:.]{1,45}$/)), (text) => {
        if (parseIp(text)) expect(isIP(text)).not.toBe(0);
      }),
    );
  });

  it('parses networks strictly, naming what is wrong', () => {
    const net = parseNetwork('10.0.0.0/8') as IpNetwork;
    expect(net.prefix).toBe(104);
    expect(inNetwork(parseIp('10.255.1.2')!, net)).toBe(true);
    expect(inNetwork(parseIp('11.0.0.1')!, net)).toBe(false);
    expect(inNetwork(parseIp('::ffff:10.9.9.9')!, net)).toBe(true);
    const v6 = parseNetwork('2001:db8::/33') as IpNetwork;
    expect(inNetwork(parseIp('2001:db8:7fff::1')!, v6)).toBe(true);
    expect(inNetwork(parseIp('2001:db8:8000::1')!, v6)).toBe(false);
    expect(parseNetwork('::1')).toMatchObject({ prefix: 128 });
    expect(parseNetwork('10.1.0.0/8')).toMatch(/host bits are set: the network is 10\.0\.0\.0\/8/);
    expect(parseNetwork('0.0.0.0/0')).toMatch(/trusts every address/);
    expect(parseNetwork('::/0')).toMatch(/trusts every address/);
    expect(parseNetwork('::ffff:0.0.0.0/96')).toMatch(/trusts every IPv4 address/);
    expect(parseNetwork('::/1')).toMatch(/trusts every IPv4 address/);
    expect(parseNetwork('::ffff:10.0.0.0/104')).toMatchObject({ prefix: 104 });
    expect(parseNetwork('10.0.0.0/33')).toMatch(/from 1 to 32/);
    expect(parseNetwork('10.0.0.0/08')).toMatch(/from 1 to 32/);
    expect(parseNetwork('::/129')).toMatch(/from 1 to 128/);
    expect(parseNetwork('localhost')).toMatch(/not an IPv4 or IPv6 address/);
    expect(parseNetwork('10.0.0.0/')).toMatch(/prefix/);
  });
});

describe('trustProxy in the config (file, env, flag)', () => {
  it('reads the list from the flag and from FRAMEHUB_TRUST_PROXY; the flag wins, empty trusts none', () => {
    expect(loadConfig([], {}).trustProxy).toEqual([]);
    expect(loadConfig(['--trust-proxy', '127.0.0.1, ::1'], {}).trustProxy).toEqual(['127.0.0.1', '::1']);
    expect(loadConfig([], { FRAMEHUB_TRUST_PROXY: '10.0.0.0/8' }).trustProxy).toEqual(['10.0.0.0/8']);
    expect(loadConfig(['--trust-proxy', '::1'], { FRAMEHUB_TRUST_PROXY: '10.0.0.0/8' }).trustProxy).toEqual([
      '::1',
    ]);
    expect(loadConfig([], { FRAMEHUB_TRUST_PROXY: '' }).trustProxy).toEqual([]);
    expect(loadConfig([], {}).authOffTrustsProxy).toBe(false);
  });

  it('refuses a bad entry, or an opt-in without a proxy, naming the field', () => {
    const bad = catchError(() => loadConfig(['--trust-proxy', '127.0.0.1,10.1.0.0/8'], {}));
    expect(bad).toMatchObject({ code: 'BAD_CONFIG' });
    expect((bad as Error).message).toMatch(/trustProxy\.1: .*host bits are set/);
    expect((catchError(() => loadConfig(['--trust-proxy', 'nginx'], {})) as Error).message).toMatch(
      /trustProxy\.0: .*not an IPv4 or IPv6 address/,
    );
    const optIn = catchError(() => loadConfig(['--config', writeConfig({ authOffTrustsProxy: true })], {}));
    expect((optIn as Error).message).toMatch(/authOffTrustsProxy: needs the proxy in trustProxy/);
    const vouched = loadConfig(
      ['--config', writeConfig({ trustProxy: ['::1'], authOffTrustsProxy: true })],
      {},
    );
    expect(vouched).toMatchObject({ trustProxy: ['::1'], authOffTrustsProxy: true });
  });
});

describe('clientAddress', () => {
  it.each<[string, string, { forwardedFor: string; forwarded: string }, string]>([
    ['an untrusted peer: its headers are ignored', '192.0.2.1', xff('203.0.113.9'), '192.0.2.1'],
    ['a trusted peer without headers', PROXY, xff(''), PROXY],
    ['one hop', PROXY, xff('203.0.113.9'), '203.0.113.9'],
    [
      'the rightmost untrusted hop, not what the client wrote',
      PROXY,
      xff('6.6.6.6, 203.0.113.9'),
      '203.0.113.9',
    ],
    ['trusted hops are skipped', PROXY, xff('203.0.113.9, 10.1.2.3,10.0.0.1'), '203.0.113.9'],
    ['all trusted: the leftmost', PROXY, xff('10.0.0.1, 10.0.0.2'), '10.0.0.1'],
    ['garbage ends the walk at the proxy', PROXY, xff('6.6.6.6, garbage'), PROXY],
    ['unknown ends the walk at the last trusted hop', PROXY, xff('6.6.6.6, unknown, 10.0.0.2'), '10.0.0.2'],
    ['an empty entry ends the walk', PROXY, xff('6.6.6.6,,10.0.0.2'), '10.0.0.2'],
    ['IPv4 with a port', PROXY, xff('203.0.113.9:4711'), '203.0.113.9'],
    ['IPv6 in brackets with a port', PROXY, xff('[2001:DB8::1]:443'), '2001:db8::1'],
    ['bare IPv6, canonicalised', PROXY, xff('2001:db8:0:0:0:0:0:1'), '2001:db8::1'],
    ['IPv4-mapped IPv6 is the IPv4 client', PROXY, xff('::ffff:203.0.113.9'), '203.0.113.9'],
    ['IPv4 in brackets is refused', PROXY, xff('[203.0.113.9]'), PROXY],
    ['a quoted hop is refused', PROXY, xff('"203.0.113.9"'), PROXY],
    ['leading zeros are refused', PROXY, xff('010.0.0.1'), PROXY],
    ['a zone id is refused', PROXY, xff('fe80::1%eth0'), PROXY],
    ['a trusted IPv6 peer', '::1', xff('203.0.113.9'), '203.0.113.9'],
    ['a dual-stack peer in mapped form is trusted', '::ffff:127.0.0.1', xff('203.0.113.9'), '203.0.113.9'],
    [
      'Forwarded, with other parameters',
      PROXY,
      fwd('for=192.0.2.60;proto=http;by=203.0.113.43'),
      '192.0.2.60',
    ],
    ['Forwarded, quoted IPv6 with a port', PROXY, fwd('For="[2001:db8:cafe::17]:4711"'), '2001:db8:cafe::17'],
    ['Forwarded, the rightmost element', PROXY, fwd('for=192.0.2.43, for=198.51.100.17'), '198.51.100.17'],
    [
      'Forwarded, trusted elements skipped',
      PROXY,
      fwd('for=192.0.2.43;proto=https, for=10.0.0.5'),
      '192.0.2.43',
    ],
    ['Forwarded, unknown', PROXY, fwd('for=unknown'), PROXY],
    [
      'Forwarded, obfuscated ends the walk',
      PROXY,
      fwd('for=192.0.2.43, for=_hidden, for=10.0.0.5'),
      '10.0.0.5',
    ],
    ['Forwarded, an obfuscated port is fine', PROXY, fwd('for="192.0.2.43:_p1"'), '192.0.2.43'],
    ['Forwarded, a comma inside quotes', PROXY, fwd('for="1.2.3.4, for=5.6.7.8"'), PROXY],
    ['Forwarded, an unterminated quote', PROXY, fwd('for=1.2.3.4, for="5.6.7.8'), PROXY],
    ['Forwarded, an element without for', PROXY, fwd('for=1.2.3.4, proto=https'), PROXY],
    ['Forwarded, for twice in one element', PROXY, fwd('for=1.2.3.4;for=5.6.7.8'), PROXY],
    ['Forwarded, bare IPv6 is not a token', PROXY, fwd('for=2001:db8::1'), PROXY],
    [
      'X-Forwarded-For wins over Forwarded',
      PROXY,
      { forwardedFor: '203.0.113.9', forwarded: 'for=1.2.3.4' },
      '203.0.113.9',
    ],
  ])('%s', (_name, peer, headers, expected) => {
    expect(clientAddress(peer, headers, trust)).toBe(expected);
  });

  it('trusts nothing by default, whatever the headers say', () => {
    expect(clientAddress(PROXY, xff('203.0.113.9'), new ProxyTrust([]))).toBe(PROXY);
  });

  it('reads only the right end of a long X-Forwarded-For, ignores a long Forwarded, walks at most MAX_HOPS', () => {
    // What a client wrote fills the left; the proxies' hops on the right are still read.
    const long = `${'x'.repeat(MAX_FORWARDING_CHARS * 4)}, 203.0.113.9, 10.0.0.1`;
    expect(clientAddress(PROXY, xff(long), trust)).toBe('203.0.113.9');
    // A hop cut in two by the cap ends the walk, at the last trusted hop: never half an address.
    const trustedChain = `1${'0.0.0.1, 10.0.0.2, 1'.repeat(MAX_FORWARDING_CHARS / 10)}0.0.0.3`;
    expect(trustedChain.length).toBeGreaterThan(MAX_FORWARDING_CHARS);
    expect(clientAddress(PROXY, xff(`203.0.113.9, ${trustedChain}`), trust)).toMatch(/^10\.0\.0\.[1-3]$/);
    // The cap falls inside "203.0.113.9": the "3.0.113.9" left of it is not taken for a hop.
    const cutHop = `203.0.113.9${' '.repeat(MAX_FORWARDING_CHARS - 19)}, 10.0.0.1`;
    expect(cutHop.slice(-MAX_FORWARDING_CHARS).startsWith('3.0.113.9 ')).toBe(true);
    expect(clientAddress(PROXY, xff(cutHop), trust)).toBe('10.0.0.1');
    const forwarded = `${'for=1.1.1.1, '.repeat(MAX_FORWARDING_CHARS / 13)}for=203.0.113.9`;
    expect(forwarded.length).toBeGreaterThan(MAX_FORWARDING_CHARS);
    expect(clientAddress(PROXY, fwd(forwarded), trust)).toBe(PROXY);
    const hops = Array.from({ length: MAX_HOPS + 4 }, (_, i) => `10.0.0.${i + 1}`);
    // The walk goes from the right: the MAX_HOPS-th hop from the right is where it stops.
    expect(clientAddress(PROXY, xff(`203.0.113.9, ${hops.join(', ')}`), trust)).toBe(
      hops[hops.length - MAX_HOPS],
    );
  });

  it('vouches for a relayed request only with the opt-in and a trusted peer', () => {
    expect(new ProxyTrust(['127.0.0.1'], true).vouchesFor('127.0.0.1')).toBe(true);
    expect(new ProxyTrust(['127.0.0.1'], true).vouchesFor('192.0.2.1')).toBe(false);
    expect(new ProxyTrust(['127.0.0.1'], false).vouchesFor('127.0.0.1')).toBe(false);
  });

  /** Hops as proxies and clients write them, and as attackers do. */
  const hop = fc.oneof(
    fc.ipV4(),
    fc.ipV6(),
    fc.tuple(fc.ipV4(), fc.integer({ min: 0, max: 65535 })).map(([ip, port]) => `${ip}:${port}`),
    fc.ipV6().map((ip) => `[${ip}]:443`),
    fc.constantFrom('unknown', '_hidden', '', ' ', '"1.2.3.4"', '[::1', '10.0.0.1', '127.0.0.1', '::1'),
    fc.string({ maxLength: 50 }),
  );
  const forwardedElement = fc.oneof(
    hop.map((h) => `for=${h}`),
    hop.map((h) => `for="${h}";proto=https`),
    fc.string({ maxLength: 40 }),
  );
  const peer = fc.oneof(fc.constantFrom(PROXY, '::1', '10.9.8.7', '192.0.2.1'), fc.ipV4(), fc.ipV6());

  /** Every address the header's hops name, as clientAddress would write it. */
  const named = (headers: { forwardedFor: string; forwarded: string }): Set<string> => {
    const hops =
      headers.forwardedFor.trim() !== ''
        ? headers.forwardedFor.split(',')
        : parseForwarded(headers.forwarded);
    return new Set(hops.flatMap((h) => (h === undefined ? [] : (parseHop(h) ?? []))).map(formatIp));
  };

  it('never throws, and gives the peer or an address one of the hops names (fast-check)', () => {
    fc.assert(
      fc.property(
        peer,
        fc.oneof(
          fc.array(hop, { maxLength: 24 }).map((hops) => xff(hops.join(', '))),
          fc.array(forwardedElement, { maxLength: 24 }).map((els) => fwd(els.join(', '))),
          fc.record({
            forwardedFor: fc.string({ maxLength: 300 }),
            forwarded: fc.string({ maxLength: 300 }),
          }),
        ),
        (p, headers) => {
          const client = clientAddress(p, headers, trust);
          if (client === p) return;
          expect(canonicalIp(client)).toBe(client);
          expect(named(headers).has(client)).toBe(true);
          // A client chosen from the headers means the peer was trusted.
          expect(trust.trusts(parseIp(p)!)).toBe(true);
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('is bounded on hostile headers: 4 KiB of quotes and commas in well under a millisecond each', () => {
    const hostile = [
      '"'.repeat(MAX_FORWARDING_CHARS),
      ','.repeat(MAX_FORWARDING_CHARS),
      'for=;'.repeat(MAX_FORWARDING_CHARS / 5),
      `for="${'\\,'.repeat(MAX_FORWARDING_CHARS / 2 - 4)}`,
    ];
    const start = performance.now();
    for (let i = 0; i < 100; i++) {
      for (const h of hostile) {
        expect(clientAddress(PROXY, fwd(h), trust)).toBe(PROXY);
        expect(clientAddress(PROXY, xff(h), trust)).toBe(PROXY);
      }
    }
    // 800 walks of up to 4 KiB; generous for a loaded 2-core machine.
    expect(performance.now() - start).toBeLessThan(2000);
  });
});

describe('reading a real uWS request', () => {
  let listen: uWS.us_listen_socket;
  let port = 0;
  beforeAll(async () => {
    const app = uWS.App();
    app.get('/*', (res, req) => {
      const seen = {
        peer: peerAddress(res),
        client: requestAddress(res, req, trust),
        relayed: isRelayed(req),
      };
      res.end(JSON.stringify(seen));
    });
    // `::` takes IPv4 too, as IPv4-mapped IPv6: uWS's text for 127.0.0.1 is then
    // 0000:0000:0000:0000:0000:ffff:7f00:0001, which must count as 127.0.0.1.
    listen = await new Promise((resolve, reject) =>
      app.listen('::', 0, (socket) => (socket ? resolve(socket) : reject(new Error('listen')))),
    );
    port = uWS.us_socket_local_port(listen);
  });
  afterAll(() => uWS.us_listen_socket_close(listen));

  /** One raw request (repeated headers cannot be sent with fetch); the handler's JSON answer. */
  const ask = (host: string, headers: string[]) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      const socket = connect(port, host);
      let text = '';
      socket.on('data', (d) => {
        text += d.toString();
        const body = text.indexOf('\r\n\r\n');
        if (body >= 0 && text.endsWith('}')) {
          socket.destroy();
          resolve(JSON.parse(text.slice(body + 4)) as Record<string, unknown>);
        }
      });
      socket.on('error', reject);
      socket.write(`GET / HTTP/1.1\r\nHost: x\r\n${headers.map((h) => `${h}\r\n`).join('')}\r\n`);
    });

  it('gives the peer one text per address, on IPv4 through a dual-stack socket and on IPv6', async () => {
    expect(await ask('127.0.0.1', [])).toEqual({ peer: '127.0.0.1', client: '127.0.0.1', relayed: false });
    expect(await ask('::1', [])).toEqual({ peer: '::1', client: '::1', relayed: false });
  });

  it('joins repeated X-Forwarded-For headers in order, and notices Via and Forwarded', async () => {
    const twice = await ask('127.0.0.1', [
      'X-Forwarded-For: 6.6.6.6',
      'X-Forwarded-For: 203.0.113.9, 10.0.0.1',
    ]);
    expect(twice).toEqual({ peer: '127.0.0.1', client: '203.0.113.9', relayed: true });
    // Both headers are one list: the second's hops are the right end of it.
    const order = await ask('::1', ['X-Forwarded-For: 198.51.100.1', 'X-Forwarded-For: 203.0.113.9']);
    expect(order.client).toBe('203.0.113.9');
    // A long first header never pushes out the proxies' hops in a later one.
    const long = await ask('::1', [
      `X-Forwarded-For: ${'6.6.6.6, '.repeat(600)}6.6.6.6`,
      'X-Forwarded-For: 203.0.113.9',
    ]);
    expect(long.client).toBe('203.0.113.9');
    expect(await ask('::1', ['Via: 1.1 edge'])).toEqual({ peer: '::1', client: '::1', relayed: true });
    // An empty header the client sent first must not hide the one its proxy appended (uWS's
    // getHeader sees only the first), nor does an empty header alone pass for not relayed.
    expect(await ask('::1', ['X-Forwarded-For:', 'X-Forwarded-For: 6.6.6.6'])).toMatchObject({
      relayed: true,
    });
    expect(await ask('::1', ['Forwarded:'])).toMatchObject({ relayed: true });
    expect(await ask('::1', ['Forwarded: for="[2001:db8::7]:1"'])).toMatchObject({
      client: '2001:db8::7',
      relayed: true,
    });
  });
});
