import { execFileSync, spawnSync } from 'node:child_process';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { VARIANT_WIDTHS } from '../../src/image/variant-names.js';
import { resolveFfmpegPath } from '../../src/media/ffmpeg-path.js';
import { benchDir, machineLine, writeResult } from '../lib/results.js';
import { type RunningTarget, startTarget } from '../lib/target.js';
import { type ChromiumResults, loadChromium } from './chromium-hook.js';
import { runJobCase } from './job-case.js';
import { joinOnce, timedJoins } from './joins.js';
import {
  bytesTable,
  type FanoutRun,
  fanoutTable,
  jobTable,
  joinsTable,
  latencyTable,
  targetsOf,
} from './tables.js';
import { viewerWindow } from './viewer-window.js';

// bench:video — issue 11's measurements, in one run (about 7 minutes on 2 cores):
// 1. bytes per second per viewer, `video` against `medium` JPEG of the same camera, same size and fps;
// 2. fan-out of each to 1,000 WS viewers (forked viewer processes): delivered fraction, daemon CPU per viewer;
// 3. time to first picture over 50 joins at random points of a 2 s GOP, with and without the GOP
//    cache: at the WS level here, in Chromium from bench/video/chromium.ts;
// 4. live latency in Chromium (capture → presented frame) over 60 s, from bench/video/chromium.ts;
// 5. a video job (60 s 720p clip with a tone, chunkSeconds=10) against the same ffmpeg command run directly.
// Each daemon is a fresh process on an ephemeral 127.0.0.1 port.
// Usage: node dist-bench/bench/video/run.js [--bytes-seconds 20] [--fanout-seconds 12]
//        [--baseline-seconds 4] [--warmup 3] [--viewers 1000] [--joins 50] [--join-spread-seconds 20]
//        [--latency-seconds 60] [--procs N] [--skip chromium,job]

const { values: args } = parseArgs({
  options: {
    'bytes-seconds': { type: 'string', default: '20' },
    'fanout-seconds': { type: 'string', default: '12' },
    'baseline-seconds': { type: 'string', default: '4' },
    warmup: { type: 'string', default: '3' },
    viewers: { type: 'string', default: '1000' },
    joins: { type: 'string', default: '50' },
    'join-spread-seconds': { type: 'string', default: '20' },
    'latency-seconds': { type: 'string', default: '60' },
    procs: { type: 'string', default: String(Math.max(1, os.availableParallelism() - 1)) },
    skip: { type: 'string', default: '' },
  },
});
const skip = new Set(args.skip.split(',').filter(Boolean));
const FPS = 15;
const GOP_SECONDS = 2;
const CAMERA = { width: 1280, height: 720 };
/** `medium` keeps the camera's aspect ratio at VARIANT_WIDTHS.medium: the video is made at that size. */
const VIDEO = {
  width: VARIANT_WIDTHS.medium,
  height: Math.round((VARIANT_WIDTHS.medium * CAMERA.height) / CAMERA.width / 2) * 2,
};
const viewers = Number(args.viewers);
const procs = Number(args.procs);
const warmupSeconds = Number(args.warmup);

/** A `test` camera with live H.264 at the `medium` variant's size; no audio (no VAD on the daemon's CPU). */
const camera = (id: string, extra: Record<string, unknown> = {}) => ({
  id,
  source: 'test',
  fps: FPS,
  ...CAMERA,
  audio: false,
  video: 'transcode',
  videoWidth: VIDEO.width,
  videoHeight: VIDEO.height,
  videoGopSeconds: GOP_SECONDS,
  ...extra,
});

const cameraArgsModule = pathToFileURL(join(benchDir, '..', 'dist', 'src', 'media', 'camera-args.js')).href;
const { defaultVideoKbps } = (await import(
  cameraArgsModule
)) as typeof import('../../src/media/camera-args.js');
const videoKbps = defaultVideoKbps(camera('v') as Parameters<typeof defaultVideoKbps>[0]);

async function startDaemon(cameras: object[]): Promise<RunningTarget> {
  const target = await startTarget('framehub', {
    cameras: [],
    fps: FPS,
    width: 0,
    height: 0,
    framehubConfig: { cameras },
  });
  // Ready once each camera's ffmpeg has produced its init and a keyframe.
  for (const cam of cameras as { id: string }[]) {
    const first = await joinOnce(target.port, `cam/${cam.id}/video`, 60_000);
    if (first.error) {
      await target.stop();
      throw new Error(`camera ${cam.id} never sent a keyframe: ${first.error}; ${target.stderrTail()}`);
    }
  }
  return target;
}

const ffmpegVersion = (path: string) =>
  execFileSync(path, ['-hide_banner', '-version'], { encoding: 'utf8' }).split('\n')[0]!;

console.log(`System: ${machineLine()}`);
const startedAt = new Date().toISOString();
const loadAtStart = os.loadavg().map((l) => l.toFixed(2));
const medium = 'cam/v/medium';
const video = 'cam/v/video';

// Cases 1 and 2: one camera, a fresh daemon.
const live = await startDaemon([camera('v')]);
let bytes: Awaited<ReturnType<typeof viewerWindow>>;
const fanout: FanoutRun[] = [];
try {
  const common = { port: live.port, url: live.url, pid: live.pid!, warmupSeconds };
  bytes = await viewerWindow({
    ...common,
    topics: [
      { topic: video, count: 1 },
      { topic: medium, count: 1 },
    ],
    procs: 1,
    seconds: Number(args['bytes-seconds']),
  });
  const [v, m] = bytes.topics;
  console.log(
    `bytes: video ${(v!.bytesPerSecondPerViewer / 1024).toFixed(1)} KiB/s, medium ${(m!.bytesPerSecondPerViewer / 1024).toFixed(1)} KiB/s per viewer`,
  );
  for (const topic of [video, medium]) {
    const baseline = await viewerWindow({
      ...common,
      topics: [{ topic, count: 1 }],
      procs: 1,
      warmupSeconds: 2,
      seconds: Number(args['baseline-seconds']),
    });
    const window = await viewerWindow({
      ...common,
      topics: [{ topic, count: viewers }],
      procs,
      seconds: Number(args['fanout-seconds']),
    });
    fanout.push({ topic, baseline, window });
    const t = window.topics[0]!;
    console.log(
      `fan-out ${topic} ×${window.opened}: delivered ${(100 * t.deliveredFraction).toFixed(2)}%, ` +
        `daemon CPU ${(100 * window.serverCpuPerSecond).toFixed(0)}% (1 viewer: ${(100 * baseline.serverCpuPerSecond).toFixed(0)}%), ` +
        `client ELU ${window.clientMaxElu.toFixed(2)}, machine busy ${window.machineBusyPct.toFixed(0)}%`,
    );
  }
} finally {
  await live.stop();
}

// Case 3 (and 4): two cameras alike but for the GOP cache.
const pair = await startDaemon([camera('v'), camera('nocache', { videoGopCache: false })]);
const joinTopics = { cache: video, noCache: 'cam/nocache/video' };
let joins: Awaited<ReturnType<typeof timedJoins>>;
let chromium: ChromiumResults | undefined;
let chromiumNote: string;
try {
  joins = await timedJoins(
    pair.port,
    [joinTopics.cache, joinTopics.noCache],
    Number(args.joins),
    Number(args['join-spread-seconds']) * 1000,
  );
  console.log(`joins: ${joins.length} done, ${joins.filter((j) => j.error).length} failed`);
  const hook = skip.has('chromium') ? undefined : await loadChromium();
  if (hook) {
    chromium = await hook.run({
      url: pair.url,
      cache: 'v',
      noCache: 'nocache',
      joins: Number(args.joins),
      latencySeconds: Number(args['latency-seconds']),
    });
    chromiumNote = hook.describe;
  } else {
    chromiumNote = skip.has('chromium')
      ? 'Chromium cases skipped (--skip chromium).'
      : 'Chromium cases not run: bench/video/chromium.ts is not in this build yet.';
  }
} finally {
  await pair.stop();
}

// Case 5: the video job against the same ffmpeg command run directly.
const job = skip.has('job') ? undefined : await runJobCase();

const loadAtEnd = os.loadavg().map((l) => l.toFixed(2));
const ffmpegPath = resolveFfmpegPath();
const file = writeResult({
  bench: 'video',
  title:
    'Live video and video jobs: bytes and fan-out against JPEG, time to first picture, live latency, the job path',
  startedAt,
  conditions: {
    command: `npm run bench:video${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`,
    'load average (1, 5, 15 min) at start': loadAtStart.join(', '),
    'load average (1, 5, 15 min) at end': loadAtEnd.join(', '),
    'cores (availableParallelism)': os.availableParallelism(),
    ffmpeg: `${ffmpegVersion(ffmpegPath)} (${ffmpegPath === '/usr/bin/ffmpeg' ? 'system' : 'bundled'})`,
    camera: `source test (testsrc2), ${CAMERA.width}×${CAMERA.height} at ${FPS} fps, no audio; MJPEG -q:v 5 (the default) for the JPEG variants`,
    video: `transcode: libx264 veryfast zerolatency, ${VIDEO.width}×${VIDEO.height} (medium's size) at ${FPS} fps, a keyframe every ${GOP_SECONDS} s, ${videoKbps} kbit/s (the default: ~0.07 bit per pixel per frame), one fragment per frame`,
    'JPEG stream': `cam/v/medium: the ${VARIANT_WIDTHS.medium} px variant of the same camera, every frame while watched`,
    viewers: `WS (/ws?topics=…), forked viewer processes (${procs} for the fan-out); records peeked for type, seq and ts, never decoded`,
    windows: `bytes ${args['bytes-seconds']} s; fan-out ${args['fanout-seconds']} s with ${viewers} viewers after a ${args['baseline-seconds']} s 1-viewer baseline; ${warmupSeconds} s warm-up before each`,
    joins: `WS level: ${args.joins} per camera at uniformly random moments of ${args['join-spread-seconds']} s (random GOP phase), both cameras side by side; a second daemon with the camera twice, \`videoGopCache: false\` on the second`,
    ...(chromium ? { chromium: chromium.browser } : {}),
  },
  tables: [
    bytesTable(bytes),
    fanoutTable(fanout),
    joinsTable(joins, joinTopics, chromium?.firstPicture),
    ...(chromium ? [latencyTable(chromium.latency)] : []),
    ...(job ? [jobTable(job)] : []),
  ],
  targets: targetsOf({ bytes, joins, joinTopics, chromium, job }),
  notes: [
    'Bytes are counted at the client: every WS message of a `frame` (JPEG) or `fragment` (H.264) record stamped inside the window, msgpack framing included, the init and the GOP cache burst excluded (they precede the window).',
    'Delivered fraction: the records each viewer received with a `ts` in the window, divided by the records the daemon published on the topic there (every seq any viewer saw) times the viewers. A `video` viewer over its buffer threshold skips to the next keyframe: the fragments it skipped count as not delivered (and as seq gaps, and in framehub_frames_dropped_total{reason="keyframe_wait"}).',
    'Daemon CPU is the daemon process (its threads: the event loop, the pool workers that make `medium`) from /proc, not the camera’s ffmpeg child (the same for both streams). Per viewer: the window’s CPU seconds per second divided by the viewers; “over 1 viewer” subtracts the 1-viewer baseline (the camera’s own cost: for `medium`, its resize every frame) first.',
    'Time to first picture at the WS level: from the connect’s start (`/ws?topics=cam/<id>/video`) to the first keyframe fragment after the init, the first thing a decoder can show. With the GOP cache it is the first cached fragment, sent with the init at once; without it the viewer waits for the next keyframe (up to the 2 s GOP).',
    chromiumNote,
    ...(bytes.clientBound || fanout.some((f) => f.window.clientBound)
      ? [
          'client-bound: a viewer process was at ≥ 90% event-loop utilisation in a window; delivery there is a floor for the server.',
        ]
      : []),
    ...(job ? job.notes : ['The video job case was not run (--skip job).']),
  ],
  raw: { bytes, fanout, joins, chromium, job },
});
console.log(`wrote ${file}`);
const report = spawnSync(process.execPath, [fileURLToPath(new URL('../report.js', import.meta.url))], {
  stdio: 'inherit',
});
if (report.status !== 0) process.exitCode = 1;
