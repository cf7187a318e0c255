import { execFileSync, spawn } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { resolveFfmpegPath } from '../../src/media/ffmpeg-path.js';
import { decode } from '../../src/wire/records.js';
import { nowMs, sleep, withTimeout } from '../lib/clock.js';
import { machineBusy, sampleMachine } from '../lib/proc-stats.js';
import { benchDir } from '../lib/results.js';
import { startTarget } from '../lib/target.js';
import { WsLite } from '../lib/ws-lite.js';

/**
 * Case 5 of bench:video: a video job against the same ffmpeg commands run directly.
 * The clip is generated (60 s, 1280×720, 30 fps testsrc2 with a 440 Hz tone, H.264 + AAC in
 * MP4). The job path is POST /api/v1/jobs/video?chunkSeconds=10 on a fresh daemon, timed from
 * the POST's start to the `chunk_ready` of chunk 0 and to `complete` on job/<id> (over WS).
 * While it runs, the daemon's children are read from /proc, so the direct run replays the
 * chunk encode's exact argv (paths swapped for a directory of our own), at the same nice value,
 * with the segment lists on the same fds; then the concat the daemon runs next, from its own
 * builder (dist/src/media/video-job-args.js). Both read the same file from the same disk.
 */
export interface JobResult {
  clip: string;
  clipSeconds: number;
  job: {
    firstChunkSeconds: number;
    totalSeconds: number;
    acceptedSeconds: number;
    chunks: number;
    /** Every event on job/<id> after the subscription: its type (and status message), s from the POST. */
    events: { at: number; type: string; message?: string }[];
    /** CPU seconds of the daemon and its children (the probe, the encode, the concat) over the job. */
    cpuSeconds: number;
    /** Of which the daemon process itself (HTTP, the job's bookkeeping and events, reading ffmpeg's pipes). */
    daemonCpuSeconds: number;
    machineBusyPct: number;
  };
  direct: {
    firstChunkSeconds: number;
    encodeSeconds: number;
    totalSeconds: number;
    chunks: number;
    /** CPU seconds of the direct ffmpeg processes. */
    cpuSeconds: number;
    machineBusyPct: number;
  };
  /** The chunk encode's argv as the daemon ran it (paths as in the daemon's directories). */
  encodeArgs: string[];
  nice: number;
  notes: string[];
}

const CLIP_SECONDS = 60;
const CHUNK_SECONDS = 10;
const jobArgsModule = pathToFileURL(join(benchDir, '..', 'dist', 'src', 'media', 'video-job-args.js')).href;

/**
 * The 60 s 720p clip with a tone (about 30 s of encoding on 2 busy cores), kept in the temp
 * directory under a name that says how it was made, so a rerun reuses it. Written to a temporary
 * name and renamed, so a half-written clip is never reused. Returns whether it was made now.
 */
function makeClip(): { path: string; made: boolean } {
  const path = join(os.tmpdir(), `framehub-bench-video-clip-${CLIP_SECONDS}s-720p30-v1.mp4`);
  if (existsSync(path)) return { path, made: false };
  const partial = `${path}.${process.pid}.partial.mp4`;
  // biome-ignore format: one option and its value per line
  execFileSync(resolveFfmpegPath(), [
    '-hide_banner', '-loglevel', 'error',
    '-f', 'lavfi', '-i', `testsrc2=size=1280x720:rate=30:duration=${CLIP_SECONDS}`,
    '-f', 'lavfi', '-i', `sine=frequency=440:sample_rate=48000:duration=${CLIP_SECONDS}`,
    '-c:v', 'libx264', '-preset', 'ultrafast', '-b:v', '3M', '-pix_fmt', 'yuv420p', '-g', '60',
    '-c:a', 'aac', '-b:a', '128k',
    '-movflags', '+faststart', '-y', partial,
  ]);
  renameSync(partial, path);
  return { path, made: true };
}

const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;

/**
 * A process's CPU seconds: its own (threads included) and its reaped children's (cutime +
 * cstime: every ffmpeg the daemon ran and waited for), from /proc/<pid>/stat.
 */
function cpuOf(pid: number | 'self'): { own: number; children: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
  const f = stat
    .slice(stat.lastIndexOf(')') + 2)
    .split(' ')
    .map(Number);
  return { own: (f[11]! + f[12]!) / CLK_TCK, children: (f[13]! + f[14]!) / CLK_TCK };
}
const totalCpu = (c: { own: number; children: number }) => c.own + c.children;

/** Child pids of a process (every thread's children), from /proc. */
function childPids(pid: number): number[] {
  try {
    return readdirSync(`/proc/${pid}/task`).flatMap((tid) =>
      readFileSync(`/proc/${pid}/task/${tid}/children`, 'latin1').split(' ').filter(Boolean).map(Number),
    );
  } catch {
    return [];
  }
}

function argvOf(pid: number): string[] | undefined {
  try {
    const raw = readFileSync(`/proc/${pid}/cmdline`, 'latin1');
    return raw.split('\0').slice(0, -1);
  } catch {
    return undefined;
  }
}

/** Watches a process's children until stopped, keeping the first argv seen of each pid. */
function watchChildren(pid: number): { stop(): string[][] } {
  const seen = new Map<number, string[]>();
  const timer = setInterval(() => {
    for (const child of childPids(pid)) {
      if (seen.has(child)) continue;
      const argv = argvOf(child);
      if (argv?.length) seen.set(child, argv);
    }
  }, 25);
  return {
    stop() {
      clearInterval(timer);
      return [...seen.values()];
    },
  };
}

interface JobEvent {
  type?: string;
  index?: number;
  code?: string;
  message?: string;
  chunks?: unknown[];
}

/** Runs the job through a fresh daemon; resolves with its timings and the encode's argv. */
async function jobPath(clip: Buffer, dataRoot: string) {
  const target = await startTarget('framehub', {
    cameras: [],
    fps: 1,
    width: 0,
    height: 0,
    framehubConfig: { jobs: { dataDir: mkdtempSync(join(dataRoot, 'jobs-')) } },
  });
  const watch = watchChildren(target.pid!);
  try {
    const t0 = nowMs();
    const [cpu0, machine0] = [cpuOf(target.pid!), sampleMachine()];
    const res = await fetch(`${target.url}/api/v1/jobs/video?chunkSeconds=${CHUNK_SECONDS}`, {
      method: 'POST',
      body: clip,
      headers: { 'content-type': 'application/octet-stream' },
    });
    const accepted = nowMs();
    const body = (await res.json()) as { id?: string; error?: { code: string; message: string } };
    if (res.status !== 202 || !body.id)
      throw new Error(`POST /api/v1/jobs/video: ${res.status} ${JSON.stringify(body)}`);
    const events: JobResult['job']['events'] = [];
    const times = await withTimeout(
      new Promise<{ first: number; complete: number; chunks: number }>((resolve, reject) => {
        let first = Number.NaN;
        const ws = new WsLite(target.port, `/ws?topics=${encodeURIComponent(`job/${body.id}`)}`, {
          onOpen: () => {},
          onMessage: (chunks, _length, binary) => {
            if (!binary) return;
            const e = decode(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)) as JobEvent;
            events.push({ at: (nowMs() - t0) / 1000, type: String(e.type), message: e.message });
            if (e.type === 'chunk_ready' && e.index === 0) first = nowMs();
            else if (e.type === 'complete') {
              ws.close();
              resolve({ first, complete: nowMs(), chunks: e.chunks?.length ?? 0 });
            } else if (e.type === 'error') {
              ws.close();
              reject(new Error(`job ${body.id} failed: ${e.code}: ${e.message}`));
            }
          },
          onClose: () => reject(new Error(`job ${body.id}: the WS closed before complete`)),
          onError: reject,
        });
      }),
      600_000,
      'the video job',
    );
    const [cpu1, machine1] = [cpuOf(target.pid!), sampleMachine()];
    return {
      firstChunkSeconds: (times.first - t0) / 1000,
      totalSeconds: (times.complete - t0) / 1000,
      acceptedSeconds: (accepted - t0) / 1000,
      chunks: times.chunks,
      events,
      cpuSeconds: totalCpu(cpu1) - totalCpu(cpu0),
      daemonCpuSeconds: cpu1.own - cpu0.own,
      machineBusyPct: 100 * machineBusy(machine0, machine1),
      children: watch.stop(),
    };
  } finally {
    watch.stop();
    await target.stop();
  }
}

/** Runs ffmpeg with `nice -n`, segment lists on fds 3.., progress on stdout drained; resolves when it exits 0. */
function runDirect(
  argv: string[],
  nice: number,
  lists: number,
  onLine: (line: string) => void,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('nice', ['-n', String(nice), ...argv], {
      stdio: ['ignore', 'pipe', 'pipe', ...Array.from({ length: lists }, () => 'pipe' as const)],
    });
    let stderr = '';
    child.stdout!.resume();
    child.stderr!.on('data', (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-2000);
    });
    for (let fd = 3; fd < 3 + lists; fd++)
      createInterface({ input: child.stdio[fd] as Readable }).on('line', onLine);
    child.once('error', reject);
    child.once('exit', (code) =>
      code === 0 ? resolve() : reject(new Error(`direct ffmpeg exited ${code}: ${stderr}`)),
    );
  });
}

/**
 * Case 5: generates the clip, runs the job, then the same commands directly.
 *
 * @example
 *   const r = await runJobCase(); // { job: { firstChunkSeconds: 2.1, totalSeconds: 41 }, direct: { totalSeconds: 39.5 }, … }
 */
export async function runJobCase(): Promise<JobResult> {
  const { buildConcatArgs, ffconcatList } = (await import(
    jobArgsModule
  )) as typeof import('../../src/media/video-job-args.js');
  const configModule = pathToFileURL(join(benchDir, '..', 'dist', 'src', 'config', 'schema.js')).href;
  const { configSchema } = (await import(configModule)) as typeof import('../../src/config/schema.js');
  const nice = configSchema.parse({}).jobs.nice;
  const dir = mkdtempSync(join(os.tmpdir(), 'framehub-video-bench-'));
  try {
    const started = nowMs();
    const { path: clipPath, made } = makeClip();
    const clip = readFileSync(clipPath);
    console.log(
      `job: clip ${made ? `made in ${((nowMs() - started) / 1000).toFixed(1)} s` : 'reused'}: ${clipPath}, ${(clip.length / 2 ** 20).toFixed(1)} MiB`,
    );
    const job = await jobPath(clip, dir);
    console.log(
      `job: first chunk ${job.firstChunkSeconds.toFixed(2)} s, complete ${job.totalSeconds.toFixed(2)} s, ${job.chunks} chunks, CPU ${job.cpuSeconds.toFixed(1)} s (daemon ${job.daemonCpuSeconds.toFixed(1)} s)`,
    );
    const encode = job.children.find((argv) => argv.some((a) => a.endsWith('chunk_%03d.mp4')));
    if (!encode) throw new Error(`the job's chunk encode was never seen among the daemon's children`);
    // The daemon's paths: its upload file (the first -i) and the job's directory.
    const input = encode[encode.indexOf('-i') + 1]!;
    const outputs = encode.filter((a) => a.endsWith('chunk_%03d.mp4'));
    const jobDir = dirname(dirname(outputs[0]!));
    const outDir = join(dir, 'direct');
    const argv = encode.map((a) => (a === input ? clipPath : a.replaceAll(jobDir, outDir)));
    for (const out of outputs) mkdirSync(dirname(out.replaceAll(jobDir, outDir)), { recursive: true });

    await sleep(1000); // let the daemon's exit settle before the direct run
    const t0 = nowMs();
    const [cpu0, machine0] = [cpuOf('self').children, sampleMachine()];
    let first = Number.NaN;
    const closed = new Map<string, number>();
    await runDirect(argv, nice, outputs.length, (line) => {
      const name = line.split(',')[0]!;
      closed.set(name, (closed.get(name) ?? 0) + 1);
      // A chunk is ready when every rendition has closed it (as the daemon publishes it).
      if (Number.isNaN(first) && name === 'chunk_000.mp4' && closed.get(name) === outputs.length)
        first = nowMs();
    });
    const encoded = nowMs();
    const chunks = readdirSync(dirname(argv.find((a) => a.endsWith('chunk_%03d.mp4'))!)).filter((f) =>
      /^chunk_\d+\.mp4$/.test(f),
    ).length;
    for (const out of outputs) {
      const renditionDir = dirname(out.replaceAll(jobDir, outDir));
      const list = join(renditionDir, 'chunks.ffconcat');
      writeFileSync(list, ffconcatList(chunks));
      const final = join(outDir, `final_${renditionDir.split('/').at(-1)}.mp4`);
      await runDirect([resolveFfmpegPath(), ...buildConcatArgs(list, final)], nice, 0, () => {});
    }
    const done = nowMs();
    const direct = {
      firstChunkSeconds: (first - t0) / 1000,
      encodeSeconds: (encoded - t0) / 1000,
      totalSeconds: (done - t0) / 1000,
      chunks,
      cpuSeconds: cpuOf('self').children - cpu0,
      machineBusyPct: 100 * machineBusy(machine0, sampleMachine()),
    };
    console.log(
      `direct: first chunk ${direct.firstChunkSeconds.toFixed(2)} s, encode ${direct.encodeSeconds.toFixed(2)} s, with concat ${direct.totalSeconds.toFixed(2)} s, CPU ${direct.cpuSeconds.toFixed(1)} s`,
    );
    const clipDescription = `${CLIP_SECONDS} s 1280×720 30 fps testsrc2 + 440 Hz tone, H.264 3 Mbit/s + AAC, ${(statSync(clipPath).size / 2 ** 20).toFixed(1)} MiB, chunkSeconds=${CHUNK_SECONDS}, default renditions`;
    return {
      clip: clipDescription,
      clipSeconds: CLIP_SECONDS,
      job: {
        firstChunkSeconds: job.firstChunkSeconds,
        totalSeconds: job.totalSeconds,
        acceptedSeconds: job.acceptedSeconds,
        chunks: job.chunks,
        events: job.events,
        cpuSeconds: job.cpuSeconds,
        daemonCpuSeconds: job.daemonCpuSeconds,
        machineBusyPct: job.machineBusyPct,
      },
      direct,
      encodeArgs: encode,
      nice,
      notes: [
        `Video job: ${clipDescription}. The job is timed from the POST’s start (the upload over loopback, the daemon’s probe, ${job.acceptedSeconds.toFixed(2)} s to the 202 here) to \`chunk_ready\` 0 and to \`complete\` on job/<id> over WS. The direct run replays the daemon’s own chunk encode argv (read from /proc while the job ran; paths swapped) at the same nice value (${nice}, jobs.nice), then the concat from the daemon’s builder, one after the other in a fresh process each, as the job does; “first chunk” there is chunk 0’s line on the segment list. Throughput is clip seconds per wall second; “% of direct” is direct time / job time. CPU is read from /proc: the daemon’s own and its reaped children’s (cutime, cstime) over the job, and the direct ffmpeg processes’; on a shared machine the CPU ratio is the steadier one, since the wall times move with the other tenants’ load (machine busy ${job.machineBusyPct.toFixed(0)}% during the job, ${direct.machineBusyPct.toFixed(0)}% during the direct run).`,
      ],
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
