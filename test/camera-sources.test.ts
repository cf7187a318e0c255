import { execFile } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config/load.js';
import {
  get,
  mainJs,
  noiseJpeg,
  type RunningDaemon,
  startDaemon,
  testCamera,
  Viewer,
  writeConfig,
} from './helpers.js';

/** Runs the real entry with `cameras`, returning its exit code and stderr (it exits before listening). */
function startWith(cameras: unknown[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(
      process.execPath,
      [mainJs, '--port', '0', '--config', writeConfig({ cameras })],
      { timeout: 20_000 },
      (_err, _stdout, stderr) => resolve({ code: child.exitCode, stderr }),
    );
  });
}

const FFMPEG_DEFAULTS = { fps: 15, width: 1280, height: 720, quality: 5, audioRate: 16_000 };

describe('camera kinds in the config', () => {
  it.each([
    ['width', 640],
    ['height', 360],
    ['quality', 5],
    ['pattern', 'life'],
    ['audioRate', 16_000],
    ['audio', true],
  ])('refuses %s on a push camera at start-up: exit 2, the field named', async (field, value) => {
    const { code, stderr } = await startWith([
      testCamera('lobby'),
      { id: 'edge', source: 'push', [field]: value },
    ]);
    expect(code).toBe(2);
    expect(stderr).toContain(`cameras.1.${field}: `);
    expect(stderr).not.toContain('    at ');
  });

  it('loads ffmpeg cameras with the same defaults as before', () => {
    const file = writeConfig({
      cameras: [
        { id: 't', source: 'test' },
        { id: 'r', source: 'rtsp://cam.local/stream' },
        { id: 'f', source: '/srv/video/loop.mp4' },
        { id: 'a', source: 'http://cam/mjpeg', audio: true, pattern: undefined },
      ],
    });
    expect(loadConfig(['--config', file], {}).cameras).toEqual([
      { id: 't', source: 'test', ...FFMPEG_DEFAULTS },
      { id: 'r', source: 'rtsp://cam.local/stream', ...FFMPEG_DEFAULTS },
      { id: 'f', source: '/srv/video/loop.mp4', ...FFMPEG_DEFAULTS },
      { id: 'a', source: 'http://cam/mjpeg', ...FFMPEG_DEFAULTS, audio: true },
    ]);
  });

  it('loads a push camera with only what it means: id, fps and audio false', () => {
    const file = writeConfig({
      cameras: [
        { id: 'p', source: 'push' },
        { id: 'q', source: 'push', fps: 30, audio: false },
      ],
    });
    expect(loadConfig(['--config', file], {}).cameras).toEqual([
      { id: 'p', source: 'push', fps: 15 },
      { id: 'q', source: 'push', fps: 30, audio: false },
    ]);
  });

  it('still refuses unknown fields and bad values on either kind, naming the field', () => {
    const file = writeConfig({
      cameras: [
        { id: 'p', source: 'push', fps: 0 },
        { id: 'f', source: 'ftp://x' },
        { id: 'u', source: 'push', colour: 'red' },
      ],
    });
    expect(() => loadConfig(['--config', file], {})).toThrow(
      /cameras\.0\.fps: [^\n]*\n {2}cameras\.1\.source: unknown source type "ftp:"[^\n]*\n {2}cameras\.2: [^\n]*colour/,
    );
  });
});

describe('camera sources in a running daemon', () => {
  let daemon: RunningDaemon;
  beforeAll(async () => {
    daemon = await startDaemon({ cameras: [testCamera('yard', 5), { id: 'edge', source: 'push', fps: 5 }] });
  });
  afterAll(() => daemon?.stop());

  it('lists only the ffmpeg camera in /status, with the same fields as before', async () => {
    await daemon.waitForLog((l) => l.msg === 'camera up' && l.camera === 'yard');
    const status = JSON.parse((await get(`${daemon.url}/api/v1/status`)).text) as {
      cameras: Record<string, unknown>[];
    };
    expect(status.cameras.map((c) => c.id)).toEqual(['yard']);
    // lastError is left out of the JSON while undefined, as before.
    expect(Object.keys(status.cameras[0]!).sort()).toEqual([
      'fps',
      'framesIn',
      'id',
      'pid',
      'restarts',
      'up',
    ]);
  });

  it('routes a pushed frame through the pool to a viewer, and refuses frames for the ffmpeg camera', async () => {
    const viewer = new Viewer(`${daemon.wsUrl}?topics=cam/edge/low`);
    const publisher = new Viewer(`${daemon.url.replace('http', 'ws')}/publish`);
    await Promise.all([viewer.opened, publisher.opened]);
    const jpeg = await noiseJpeg(640, 360);
    publisher.send({ type: 'frame', camera: 'edge', data: jpeg });
    await viewer.until((rs) =>
      rs.some((r) => r.type === 'frame' && r.topic === 'cam/edge/low' && r.width === 320),
    );
    publisher.send({ type: 'frame', camera: 'yard', data: jpeg });
    await publisher.until((rs) => rs.some((r) => r.type === 'error' && r.code === 'NOT_PUSH_CAMERA'));
    viewer.close();
    publisher.close();
  });
});
