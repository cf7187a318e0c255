import { type ChildProcess, spawn } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';
import type { FfmpegCameraConfig } from '../config/schema.js';
import type { Logger } from '../log.js';
import {
  buildCameraCommand,
  type CameraCommand,
  cameraHasAudio,
  movieTakesFormatOptions,
  SCRIPT_FD,
  VIDEO_FD,
} from '../media/camera-args.js';
import { killGroup, trackChild } from '../media/children.js';
import { Fmp4Error, type Fmp4Piece, Fmp4Splitter } from '../media/fmp4.js';
import { hasCredentials, sourceRedactor } from '../media/source-credentials.js';
import type { Metrics } from '../metrics/metrics.js';
import { JpegSplitter, MAX_FRAME_BYTES } from './jpeg-splitter.js';
import { PcmReader } from './pcm-reader.js';
import { StderrTail } from './stderr-tail.js';

export interface SupervisorOptions {
  ffmpegPath: string;
  clockFont?: string | undefined;
  log: Logger;
  metrics: Metrics;
  /** Called for every complete JPEG with its capture time (ms since epoch). */
  onFrame: (jpeg: Buffer, capturedAt: number) => void;
  /** Called with mono s16le PCM (camera.audioRate) when the camera has audio, as it arrives. */
  onAudio?: (samples: Int16Array) => void;
  /** Called for each init segment and fragment of the live H.264 (camera `video`), with when it arrived (ms since epoch). */
  onVideo?: (piece: Fmp4Piece, receivedAt: number) => void;
  /** Called when the camera starts or stops delivering frames. */
  onUpChange?: (up: boolean, reason: string | undefined) => void;
  /** First restart delay; doubles on each failure up to maxBackoffMs. */
  minBackoffMs?: number;
  maxBackoffMs?: number;
  /** A process that sends no frame for this long is killed and restarted (stalled network camera). */
  stallTimeoutMs?: number;
}

export interface CameraStatus {
  id: string;
  up: boolean;
  pid: number | undefined;
  restarts: number;
  framesIn: number;
  fps: number;
  lastError: string | undefined;
  /** Set when the camera's video was turned off because it cannot be served (and why). */
  videoOff?: string | undefined;
  stderrTail: string[];
}

/** After SIGKILL, how long stop() still waits for the process to be reaped before it gives up. */
const REAP_WAIT_MS = 1000;
/** A process that lived this long is considered healthy: the next failure restarts at minBackoffMs. */
const STABLE_AFTER_MS = 10_000;
const OVERSIZE = `frame over ${MAX_FRAME_BYTES / (1024 * 1024)} MiB discarded`;

/**
 * Keeps one ffmpeg child per camera running: spawns it, splits its MJPEG stdout into frames,
 * and restarts it with capped exponential backoff when it exits or stalls.
 */
export class CameraSupervisor {
  private child: ChildProcess | undefined;
  private stopped = false;
  private failures = 0;
  private restartTimer: NodeJS.Timeout | undefined;
  private stallTimer: NodeJS.Timeout | undefined;
  private startedAt = 0;
  private up = false;
  private restarts = 0;
  private framesIn = 0;
  private fpsWindow: number[] = [];
  private lastError: string | undefined;
  /** Why we killed the process ourselves, so the exit does not overwrite the real cause. */
  private killReason: string | undefined;
  private readonly stderrTail: StderrTail;
  /** Applied to everything said about this camera's source: its credentials become `***`. */
  private readonly redact: (text: string) => string;
  /** The source as log lines show it. */
  private readonly source: string;
  /**
   * Why this camera's video was turned off for the daemon's life: its stream is one framehub
   * cannot serve (`copy` of a source that is not H.264). Its MJPEG goes on without it.
   */
  private videoOff: string | undefined;
  /** Frames the splitter discarded as oversized in this ffmpeg run: they explain a "stall". */
  private oversizeThisRun = 0;
  private readonly tooLargeCounter;
  private readonly upGauge;

  constructor(
    readonly camera: FfmpegCameraConfig,
    private readonly opts: SupervisorOptions,
  ) {
    this.upGauge = opts.metrics.cameraUp.labels(camera.id);
    this.tooLargeCounter = opts.metrics.framesDropped.labels({ reason: 'too_large' });
    this.upGauge.set(0);
    this.redact = sourceRedactor(camera.source);
    this.source = this.redact(camera.source);
    this.stderrTail = new StderrTail(this.redact);
  }

  start(): void {
    if (this.stopped || this.child) return;
    const command = this.command();
    const audio = cameraHasAudio(this.camera);
    const video = this.camera.video !== undefined && this.videoOff === undefined;
    // Its own process group (detached), so stopping it also stops anything it started, and the
    // registry lets a shutdown past its deadline kill it (killAllChildren).
    const child = spawn(this.opts.ffmpegPath, command.args, {
      stdio: [
        'ignore',
        'pipe',
        'pipe',
        audio ? 'pipe' : 'ignore',
        command.script ? 'pipe' : 'ignore',
        video ? 'pipe' : 'ignore',
      ],
      detached: true,
    });
    trackChild(child);
    this.child = child;
    this.startedAt = Date.now();
    this.oversizeThisRun = 0;
    this.opts.metrics.ffmpegProcesses.inc();
    this.opts.log.info(
      { camera: this.camera.id, ffmpegPid: child.pid, source: this.source },
      'camera ffmpeg started',
    );
    if (command.script) {
      const script = child.stdio[SCRIPT_FD] as Writable | null;
      // An ffmpeg that dies before reading it breaks the pipe (EPIPE): its exit is what gets
      // reported and restarted, so the write error itself only goes to the debug log.
      script?.on('error', (err) =>
        this.opts.log.debug({ camera: this.camera.id, err: err.message }, 'source script pipe'),
      );
      script?.end(command.script);
    }

    const splitter = new JpegSplitter((jpeg) => this.frame(jpeg), {
      onOversize: (bytes) => this.oversize(bytes),
    });
    child.stdout?.on('data', (chunk: Buffer) => splitter.push(chunk));
    child.stderr?.setEncoding('utf8').on('data', (text: string) => this.stderrTail.push(text));
    if (audio) {
      const pcm = new PcmReader((samples) => this.opts.onAudio?.(samples));
      (child.stdio[3] as NodeJS.ReadableStream | null)?.on('data', (chunk: Buffer) => pcm.push(chunk));
    }
    if (video) {
      // A new splitter per run: a restarted ffmpeg starts with a new init segment.
      const fmp4 = new Fmp4Splitter();
      (child.stdio as unknown as (Readable | null)[])[VIDEO_FD]?.on('data', (chunk: Buffer) =>
        this.video(child, fmp4, chunk),
      );
    }
    child.on('error', (err) => {
      this.lastError = this.redact(err.message);
      this.opts.log.error({ camera: this.camera.id, err: this.lastError }, 'camera ffmpeg failed to spawn');
    });
    child.on('close', (code, signal) => this.exited(child, code, signal));
    this.armStallTimer();
  }

  /**
   * Stops the process group for good: SIGTERM, then SIGKILL if it has not exited after graceMs.
   * Bounded: resolves at the latest REAP_WAIT_MS after the SIGKILL even if the exit was never
   * seen, so a shutdown never waits on a camera.
   */
  async stop(graceMs = 1500): Promise<void> {
    this.stopped = true;
    clearTimeout(this.restartTimer);
    clearTimeout(this.stallTimer);
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    let killTimer: NodeJS.Timeout | undefined;
    let giveUpTimer: NodeJS.Timeout | undefined;
    const closed = new Promise<void>((resolve) => {
      child.once('close', () => resolve());
      killTimer = setTimeout(() => killGroup(child, 'SIGKILL'), graceMs);
      giveUpTimer = setTimeout(() => {
        this.opts.log.warn(
          { camera: this.camera.id, ffmpegPid: child.pid },
          'camera ffmpeg not reaped after SIGKILL',
        );
        resolve();
      }, graceMs + REAP_WAIT_MS);
    });
    killGroup(child, 'SIGTERM');
    await closed;
    clearTimeout(killTimer);
    clearTimeout(giveUpTimer);
  }

  status(): CameraStatus {
    const now = Date.now();
    const recent = this.fpsWindow.filter((t) => now - t <= 5000);
    return {
      id: this.camera.id,
      up: this.up,
      pid: this.child?.pid,
      restarts: this.restarts,
      framesIn: this.framesIn,
      fps: recent.length / 5,
      // Redacted again, cheaply, so no future writer of lastError can leak a source's credentials.
      lastError: this.lastError === undefined ? undefined : this.redact(this.lastError),
      videoOff: this.videoOff,
      stderrTail: this.stderrTail.lines(),
    };
  }

  private frame(jpeg: Buffer): void {
    const capturedAt = Date.now();
    this.framesIn++;
    this.fpsWindow.push(capturedAt);
    if (this.fpsWindow.length > this.camera.fps * 6)
      this.fpsWindow.splice(0, this.fpsWindow.length - this.camera.fps * 5);
    if (!this.up) {
      this.up = true;
      this.upGauge.set(1);
      this.opts.log.info({ camera: this.camera.id }, 'camera up');
      this.opts.onUpChange?.(true, undefined);
    }
    this.armStallTimer();
    this.opts.onFrame(jpeg, capturedAt);
  }

  /**
   * Live H.264 from fd 5, split into its init segment and fragments. ffmpeg's output is trusted
   * less than its exit code: a stream the splitter cannot read restarts the process, as a stall does.
   */
  private video(child: ChildProcess, fmp4: Fmp4Splitter, chunk: Buffer): void {
    if (this.child !== child) return;
    let pieces: Fmp4Piece[];
    try {
      pieces = fmp4.push(chunk);
    } catch (err) {
      if (!(err instanceof Fmp4Error)) throw err;
      if (err.code === 'FMP4_UNSUPPORTED') {
        // Restarting would fail the same way and take the MJPEG down with it, again and again.
        this.videoOff = `video off: ${err.message}`;
        this.killReason = this.videoOff;
        this.opts.log.error(
          { camera: this.camera.id, err: err.message },
          'camera video cannot be served (use video "transcode"); restarting ffmpeg without it',
        );
      } else {
        this.killReason = `unreadable fragmented MP4 from ffmpeg (${err.code}): ${err.message}`;
        this.opts.log.warn(
          { camera: this.camera.id, err: err.message },
          'camera video unreadable, restarting ffmpeg',
        );
      }
      killGroup(child, 'SIGKILL');
      return;
    }
    const now = Date.now();
    for (const piece of pieces) this.opts.onVideo?.(piece, now);
  }

  /** Counts every discarded frame, but warns once per run: a camera set too large sends nothing else. */
  private oversize(bytes: number): void {
    this.tooLargeCounter.inc();
    this.lastError = `${OVERSIZE}: lower the camera's width, height or quality`;
    if (this.oversizeThisRun++ === 0)
      this.opts.log.warn(
        { camera: this.camera.id, discardedBytes: bytes, maxFrameBytes: MAX_FRAME_BYTES },
        OVERSIZE,
      );
  }

  /** Adds the oversized-frame count to why the process ended, which would otherwise read "stalled". */
  private withOversize(reason: string): string {
    return this.oversizeThisRun ? `${reason}; ${this.oversizeThisRun} × ${OVERSIZE}` : reason;
  }

  private armStallTimer(): void {
    clearTimeout(this.stallTimer);
    const ms = this.opts.stallTimeoutMs ?? 10_000;
    this.stallTimer = setTimeout(() => {
      this.killReason = `stalled: no frame for ${ms} ms`;
      this.opts.log.warn({ camera: this.camera.id }, 'camera stalled, killing ffmpeg');
      if (this.child) killGroup(this.child, 'SIGKILL');
    }, ms);
    this.stallTimer.unref();
  }

  /**
   * The ffmpeg command for this camera. Where only argv can carry the source's credentials
   * (RTSP with an ffmpeg older than 5.1), says so once per start: they show in /proc to local users.
   */
  private command(): CameraCommand {
    const needsProbe = /^rtsps?:\/\//i.test(this.camera.source) && hasCredentials(this.camera.source);
    const camera = this.videoOff ? { ...this.camera, video: undefined } : this.camera;
    const command = buildCameraCommand(camera, {
      clockFont: this.opts.clockFont,
      movieFormatOptions: needsProbe && movieTakesFormatOptions(this.opts.ffmpegPath),
    });
    if (command.credentialsInArgs && this.restarts === 0) {
      this.opts.log.warn(
        { camera: this.camera.id, source: this.source },
        'this ffmpeg can only take RTSP credentials on its command line (5.1 and later take them from a pipe): local users can read them in /proc/<pid>/cmdline',
      );
    }
    return command;
  }

  private exited(child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (this.child !== child) return;
    this.child = undefined;
    clearTimeout(this.stallTimer);
    this.stderrTail.end();
    this.opts.metrics.ffmpegProcesses.dec();
    const wasUp = this.up;
    this.up = false;
    this.upGauge.set(0);
    if (this.stopped) return;

    const lived = Date.now() - this.startedAt;
    this.failures = lived >= STABLE_AFTER_MS ? 1 : this.failures + 1;
    const min = this.opts.minBackoffMs ?? 250;
    const delay = Math.min(this.opts.maxBackoffMs ?? 30_000, min * 2 ** (this.failures - 1));
    this.lastError = this.withOversize(this.killReason ?? `ffmpeg exited (code ${code}, signal ${signal})`);
    this.killReason = undefined;
    if (wasUp) this.opts.onUpChange?.(false, this.lastError);
    this.opts.log.warn(
      {
        camera: this.camera.id,
        source: this.source,
        code,
        signal,
        restartInMs: delay,
        stderr: this.stderrTail.lines(5),
      },
      'camera ffmpeg exited',
    );
    this.restartTimer = setTimeout(() => {
      this.restarts++;
      this.opts.metrics.cameraRestarts.labels(this.camera.id).inc();
      this.start();
    }, delay);
  }
}
