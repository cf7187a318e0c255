import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config/load.js';
import { mainJs, writeConfig } from './helpers.js';

describe('loadConfig', () => {
  it('defaults to 127.0.0.1:8080 with four demo cameras, only one with the tone', () => {
    const c = loadConfig([], {});
    expect(c.host).toBe('127.0.0.1');
    expect(c.port).toBe(8080);
    expect(c.cameras[0]).toEqual({
      id: 'demo',
      source: 'test',
      fps: 15,
      width: 1280,
      height: 720,
      quality: 5,
      audioRate: 16000,
      video: 'transcode',
      videoWidth: 640,
      videoHeight: 360,
    });
    expect(c.cameras.map((x) => [x.id, x.pattern ?? 'testsrc2', `${x.width}x${x.height}@${x.fps}`])).toEqual([
      ['demo', 'testsrc2', '1280x720@15'],
      ['bars', 'smptehdbars', '640x360@10'],
      ['life', 'life', '480x270@20'],
      ['rgb', 'rgbtestsrc', '320x240@5'],
    ]);
    expect(c.cameras.filter((x) => x.audio !== false).map((x) => x.id)).toEqual(['demo']);
  });

  it('refuses a pattern on a camera that is not a test source', () => {
    const file = writeConfig({ cameras: [{ id: 'p', source: 'push', pattern: 'life' }] });
    expect(() => loadConfig(['--config', file], {})).toThrow(/cameras\.0\.pattern/);
  });

  it('refuses a bad FRAMEHUB_LOG_LEVEL or FRAMEHUB_VAD_BACKEND with exit 2, naming the field', () => {
    for (const [name, value, field] of [
      ['FRAMEHUB_LOG_LEVEL', 'loud', 'logLevel'],
      ['FRAMEHUB_VAD_BACKEND', 'gpu', 'vadBackend'],
    ] as const) {
      const run = spawnSync(process.execPath, [mainJs, '--port', '0'], {
        env: { ...process.env, [name]: value },
        encoding: 'utf8',
        timeout: 20_000,
      });
      expect({ name, status: run.status }).toEqual({ name, status: 2 });
      expect(run.stderr).toContain(field);
      expect(run.stderr).not.toContain('    at ');
    }
    expect(loadConfig([], { FRAMEHUB_LOG_LEVEL: 'debug', FRAMEHUB_VAD_BACKEND: 'js' })).toMatchObject({
      logLevel: 'debug',
      vadBackend: 'js',
    });
  });

  it('takes flags over env over the file', () => {
    const file = writeConfig({ host: '127.0.0.2', port: 9000, cameras: [{ id: 'lobby', source: 'test' }] });
    const c = loadConfig(['--port', '0', '--config', file], {
      FRAMEHUB_PORT: '1234',
      FRAMEHUB_HOST: '127.0.0.3',
    });
    expect(c.port).toBe(0);
    expect(c.host).toBe('127.0.0.3');
    expect(c.cameras.map((x) => x.id)).toEqual(['lobby']);
    expect(c.cameras[0]).toMatchObject({ fps: 15, width: 1280, height: 720 });
  });

  it('reads the config path from FRAMEHUB_CONFIG', () => {
    const file = writeConfig({ cameras: [{ id: 'yard', source: 'rtsp://cam.local/stream', fps: 5 }] });
    expect(loadConfig([], { FRAMEHUB_CONFIG: file }).cameras[0]).toMatchObject({ id: 'yard', fps: 5 });
  });

  it('accepts http, rtsp and file sources', () => {
    const file = writeConfig({
      cameras: [
        { id: 'a', source: 'http://cam/mjpeg' },
        { id: 'b', source: 'rtsp://cam/x' },
        { id: 'c', source: '/var/video/loop.mp4' },
      ],
    });
    expect(loadConfig(['--config', file], {}).cameras).toHaveLength(3);
  });

  const bad: [string, unknown, string[], RegExp][] = [
    ['an unknown field', { cameras: [], colour: 'red' }, [], /\(root\).*colour/],
    ['an unknown camera field', { cameras: [{ id: 'a', source: 'test', zoom: 2 }] }, [], /cameras\.0.*zoom/],
    ['a port out of range', {}, ['--port', '70000'], /port: .*65535/],
    ['a non-numeric port', {}, ['--port', 'eighty'], /port: .*number/],
    [
      'an unknown source type',
      { cameras: [{ id: 'a', source: 'ftp://x/y' }] },
      [],
      /cameras\.0\.source: unknown source type "ftp:"/,
    ],
    ['a bad camera id', { cameras: [{ id: 'Lobby!', source: 'test' }] }, [], /cameras\.0\.id/],
    [
      'a duplicate camera id',
      {
        cameras: [
          { id: 'a', source: 'test' },
          { id: 'a', source: 'test' },
        ],
      },
      [],
      /cameras\.1\.id: duplicate/,
    ],
    ['an fps out of range', { cameras: [{ id: 'a', source: 'test', fps: 0 }] }, [], /cameras\.0\.fps/],
    // Each field alone is valid; together they are not, and the first audio would have crashed.
    [
      'a vad stopDb above the default startDb',
      { vad: { startDb: 3 } },
      [],
      /vad: vad\.stopDb must not exceed vad\.startDb/,
    ],
    ['a vad maxSegmentMs under two frames', { vad: { maxSegmentMs: 10 } }, [], /vad: vad\.maxSegmentMs/],
    // Past 2^31-1 ms Node fires a timer at once: every finished job would vanish.
    [
      'a job TTL over the timer limit',
      { jobs: { ttlSeconds: 2_600_000 } },
      [],
      /jobs\.ttlSeconds: .*2147483/,
    ],
  ];
  for (const [what, file, args, message] of bad) {
    it(`rejects ${what}, naming the field`, () => {
      expect(() => loadConfig(['--config', writeConfig(file), ...args], {})).toThrowError(message);
      try {
        loadConfig(['--config', writeConfig(file), ...args], {});
      } catch (err) {
        expect((err as { code: string }).code).toBe('BAD_CONFIG');
      }
    });
  }

  it('takes the cluster settings from flags and env: one node without a Redis URL', () => {
    expect(loadConfig([], {}).cluster).toEqual({
      redisCluster: false,
      ingest: true,
      leaseMs: 3000,
      latestFrameTtlMs: 5000,
    });
    expect(
      loadConfig(['--redis-url', 'redis://10.0.0.9:6379', '--ingest=false', '--node-id', 'edge-1'], {})
        .cluster,
    ).toMatchObject({ redisUrl: 'redis://10.0.0.9:6379', ingest: false, nodeId: 'edge-1' });
    expect(
      loadConfig([], {
        FRAMEHUB_REDIS_URL: 'rediss://r:6380',
        FRAMEHUB_INGEST: 'true',
        FRAMEHUB_NODE_ID: 'a',
      }).cluster,
    ).toMatchObject({ redisUrl: 'rediss://r:6380', ingest: true, nodeId: 'a' });
    expect(() => loadConfig(['--ingest=no'], {})).toThrowError(/cluster\.ingest/);
    expect(() => loadConfig(['--redis-url', 'http://r:6379'], {})).toThrowError(
      /cluster\.redisUrl: must be a redis/,
    );
    expect(() => loadConfig(['--node-id', 'a b'], {})).toThrowError(/cluster\.nodeId/);
  });

  it('takes jobs.dataDir from --data-dir and FRAMEHUB_DATA_DIR, over the file', () => {
    const file = writeConfig({ jobs: { dataDir: '/from/file', ttlSeconds: 60 } });
    expect(loadConfig(['--config', file, '--data-dir', '/srv/a'], {}).jobs).toMatchObject({
      dataDir: '/srv/a',
      ttlSeconds: 60,
    });
    expect(loadConfig(['--config', file], { FRAMEHUB_DATA_DIR: '/srv/b' }).jobs.dataDir).toBe('/srv/b');
  });

  it('takes a Redis Cluster as seeds; several URLs without --redis-cluster are refused', () => {
    const seeds = 'redis://a:7000,redis://b:7000';
    expect(loadConfig(['--redis-url', seeds, '--redis-cluster=true'], {}).cluster).toMatchObject({
      redisUrl: seeds,
      redisCluster: true,
    });
    expect(
      loadConfig([], { FRAMEHUB_REDIS_URL: seeds, FRAMEHUB_REDIS_CLUSTER: 'true' }).cluster.redisCluster,
    ).toBe(true);
    expect(() => loadConfig(['--redis-url', seeds], {})).toThrowError(
      /cluster\.redisUrl: names several servers/,
    );
    expect(() => loadConfig(['--redis-url', 'redis://a:7000,http://b'], {})).toThrowError(
      /cluster\.redisUrl: must be a redis/,
    );
    expect(() => loadConfig(['--redis-cluster=yes'], {})).toThrowError(/cluster\.redisCluster/);
  });

  it('rejects an unknown flag and a missing or malformed file', () => {
    expect(() => loadConfig(['--prot', '1'], {})).toThrowError(/command line: .*--prot/);
    expect(() => loadConfig(['--config', '/nonexistent/x.json'], {})).toThrowError(/cannot read .*ENOENT/);
    expect(() => loadConfig(['--config', writeConfig('[1,2]')], {})).toThrowError(/JSON object/);
  });
});

describe('daemon start-up with bad config', () => {
  for (const [what, config, field] of [
    ['unknown field', { cameras: [], bogus: 1 }, 'bogus'],
    ['port out of range', { port: -1 }, 'port'],
    ['unknown source type', { cameras: [{ id: 'x', source: 'gopher://a/b' }] }, 'cameras.0.source'],
  ] as const) {
    it(`exits non-zero on ${what} and names ${field}`, () => {
      const run = spawnSync(process.execPath, [mainJs, '--config', writeConfig(config)], {
        encoding: 'utf8',
        timeout: 10_000,
      });
      expect(run.status).toBe(2);
      expect(run.stderr).toContain(field);
      expect(run.stderr).toMatch(/invalid configuration/);
    });
  }
});
