import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { FRAME_VARIANTS } from '../src/image/variant-names.js';
import { root } from './helpers.js';

/**
 * The camera wall's DOM-free modules (src/server/viewer/js), imported in Node: the page's
 * vocabularies against the server's, and the rules that decide what a tile shows (drops,
 * multipart parsing, grid). The modules are plain browser JS, so they are loaded by URL and
 * typed here by the shape the tests use.
 */
const viewerDir = join(root, 'src', 'server', 'viewer');
const load = (name: string): Promise<unknown> => import(pathToFileURL(join(viewerDir, 'js', name)).href);

interface Lists {
  FRAME_VARIANTS: readonly string[];
  VARIANTS: readonly string[];
  TRANSPORTS: readonly string[];
}
interface Frame {
  topic: string;
  seq: number;
  ts: number;
  cached: boolean;
}
interface FrameStatsModule {
  FrameStats: new (
    windowMs: number,
  ) => {
    frames: number;
    drops: number;
    seq: number | undefined;
    add(frame: Frame, now: number): void;
    resetSeq(): void;
    fps(now: number): number;
    latency(now: number): number | undefined;
  };
}
interface Part {
  headers: Map<string, string>;
  body: Uint8Array;
}
interface MultipartModule {
  boundaryOf(contentType: string | null): string | undefined;
  MultipartReader: new (boundary: string, onPart: (p: Part) => void) => { push(chunk: Uint8Array): void };
  MultipartError: new () => Error;
}
interface GridModule {
  fitGrid(count: number, width: number, height: number): { cols: number; rows: number; fill: boolean };
}

describe('viewer lists', () => {
  it('offers exactly the server frame variants, plus auto', async () => {
    const lists = (await load('lists.js')) as Lists;
    expect([...lists.FRAME_VARIANTS].sort()).toEqual([...FRAME_VARIANTS].sort());
    expect(lists.VARIANTS).toEqual(['auto', ...lists.FRAME_VARIANTS]);
  });

  it('has one transport module per listed transport, and the page hard-codes no list', async () => {
    const lists = (await load('lists.js')) as Lists;
    // The registry's type (Record<TransportName, OpenTransport>) ties it to the list at
    // type-check time; this checks that each name has its module file, loadable in Node.
    for (const name of lists.TRANSPORTS) {
      const mod = (await load(`${name}-transport.js`)) as { open?: unknown };
      expect(typeof mod.open, `${name}-transport.js exports open`).toBe('function');
    }
    const html = readFileSync(join(viewerDir, 'index.html'), 'utf8');
    for (const value of [...lists.TRANSPORTS, ...lists.VARIANTS])
      expect(html, `index.html lists "${value}" itself`).not.toMatch(new RegExp(`<option value="${value}"`));
  });

  it('loads every page URL relative to the page, so a proxy prefix is kept', () => {
    const html = readFileSync(join(viewerDir, 'index.html'), 'utf8');
    const urls = [...html.matchAll(/\b(?:src|href)="([^"]+)"/g)].map((m) => m[1]);
    expect(urls).toEqual(['data:,', 'viewer.css', 'vendor/msgpackr.js', 'viewer.js']);
    // No inline script or style: the page runs under a CSP without 'unsafe-inline'.
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
    expect(html).not.toMatch(/<style|\sstyle="/);
  });
});

describe('viewer drop counting', () => {
  const stats = async () => new ((await load('frame-stats.js')) as FrameStatsModule).FrameStats(2000);
  const frame = (seq: number, cached = false, topic = 'cam/a/low'): Frame => ({ topic, seq, ts: 0, cached });

  it('does not count the gap after a cached first frame (up to 1 s old) as drops', async () => {
    const s = await stats();
    s.add(frame(40, true), 1000); // the cache: refreshed once a second while nobody watched
    s.add(frame(51), 1100);
    s.add(frame(52), 1200);
    expect(s.drops).toBe(0);
    expect(s.frames).toBe(3);
    expect(s.seq).toBe(52);
  });

  it('counts gaps between live frames, and the gap into a cached frame (back from slow)', async () => {
    const s = await stats();
    s.add(frame(10), 0);
    s.add(frame(13), 100); // 11, 12 skipped
    expect(s.drops).toBe(2);
    s.add(frame(20, true), 200); // skipped as slow: 14..19 lost, then the newest comes cached
    expect(s.drops).toBe(8);
    s.add(frame(21), 300);
    expect(s.drops).toBe(8);
  });

  it('starts afresh on a new topic or connection, and ignores repeats', async () => {
    const s = await stats();
    s.add(frame(10), 0);
    s.add(frame(30, true, 'cam/a/medium'), 100); // auto switched: another topic
    s.add(frame(40, false, 'cam/a/medium'), 200); // after its cached frame: no loss
    expect(s.drops).toBe(0);
    s.resetSeq(); // reconnect
    s.add(frame(90, true, 'cam/a/medium'), 300);
    s.add(frame(90, false, 'cam/a/medium'), 400);
    s.add(frame(89, false, 'cam/a/medium'), 500);
    expect(s.drops).toBe(0);
    expect(s.frames).toBe(4); // 10, 30, 40, 90: the repeat and the older frame are not new
  });

  it('measures fps over its window and leaves cached frames out of latency', async () => {
    const s = await stats();
    s.add({ topic: 'cam/a/low', seq: 1, ts: 0, cached: true }, 900); // 900 ms old: not latency
    for (let i = 0; i < 10; i++)
      s.add({ topic: 'cam/a/low', seq: 2 + i, ts: 1000 + i * 100 - 30, cached: false }, 1000 + i * 100);
    expect(s.latency(1900)).toBe(30);
    expect(s.fps(1900)).toBeCloseTo(10, 0);
    expect(s.fps(10_000)).toBe(0);
  });
});

describe('viewer MJPEG reader', () => {
  const bytes = (s: string) => Uint8Array.from(s, (c) => c.charCodeAt(0));
  const part = (seq: number, body: string) =>
    `--framehubframe\r\nContent-Type: image/jpeg\r\nContent-Length: ${body.length}\r\n` +
    `X-Topic: cam/a/low\r\nX-Seq: ${seq}\r\nX-Timestamp: 17\r\n\r\n${body}\r\n`;

  it('splits parts at any chunk boundary, bodies containing CRLF and the delimiter included', async () => {
    const { MultipartReader, boundaryOf } = (await load('multipart.js')) as MultipartModule;
    expect(boundaryOf('multipart/x-mixed-replace; boundary=framehubframe')).toBe('framehubframe');
    expect(boundaryOf('text/html')).toBeUndefined();
    const stream = bytes(part(1, 'AB\r\n\r\nC') + part(2, '--framehubframe\r\n\r\n') + part(3, ''));
    for (const size of [1, 2, 7, stream.length]) {
      const parts: Part[] = [];
      const reader = new MultipartReader('framehubframe', (p) => parts.push(p));
      for (let i = 0; i < stream.length; i += size) reader.push(stream.subarray(i, i + size));
      expect(parts.map((p) => [p.headers.get('x-seq'), String.fromCharCode(...p.body)])).toEqual([
        ['1', 'AB\r\n\r\nC'],
        ['2', '--framehubframe\r\n\r\n'],
        ['3', ''],
      ]);
      expect(parts[0]!.headers.get('x-topic')).toBe('cam/a/low');
    }
  });

  it('refuses a stream that is not framed as framehub frames it', async () => {
    const { MultipartReader, MultipartError } = (await load('multipart.js')) as MultipartModule;
    const push = (text: string) => () => new MultipartReader('framehubframe', () => {}).push(bytes(text));
    expect(push('--other\r\nContent-Length: 1\r\n\r\nx')).toThrow(MultipartError);
    expect(push('--framehubframe\r\nContent-Type: image/jpeg\r\n\r\nx')).toThrow(/Content-Length/);
    expect(push(`--framehubframe\r\n${'X-Pad: y\r\n'.repeat(1000)}`)).toThrow(/8 KiB/);
  });
});

describe('viewer grid', () => {
  it('fills the window with the column count that gives pictures the most area', async () => {
    const { fitGrid } = (await load('grid.js')) as GridModule;
    expect(fitGrid(1, 1200, 700)).toEqual({ cols: 1, rows: 1, fill: true });
    expect(fitGrid(2, 1000, 470)).toEqual({ cols: 2, rows: 1, fill: true });
    expect(fitGrid(2, 600, 850)).toEqual({ cols: 1, rows: 2, fill: true });
    expect(fitGrid(4, 1600, 900)).toEqual({ cols: 2, rows: 2, fill: true });
    expect(fitGrid(4, 1900, 500)).toEqual({ cols: 4, rows: 1, fill: true });
    // Too many to fit at a useful size: scroll, with as many columns of at least 260 px as fit.
    expect(fitGrid(30, 1200, 700)).toEqual({ cols: 4, rows: 8, fill: false });
    expect(fitGrid(3, 200, 700)).toEqual({ cols: 1, rows: 3, fill: false });
  });
});
