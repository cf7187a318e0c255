import type { SparseHistogram } from './histogram.js';
import type { Transport } from './viewers.js';

/** The messages between the harness (coordinator) and its swarm worker processes. */

export type SlowMode = 'stall' | 'throttle';

/** A group of identical viewers; groups keep the open command small for 10,000 viewers. */
export interface ViewerGroup {
  count: number;
  transport: Transport;
  camera: number;
  slow?: SlowMode;
}

export interface OpenCmd {
  cmd: 'open';
  port: number;
  cameras: string[];
  variant: string;
  groups: ViewerGroup[];
  /** Connections in flight at once in this process. */
  concurrency: number;
  connectTimeoutMs: number;
  /** Slow viewers read this many KiB/s in throttle mode. */
  throttleKiBps: number;
}

export interface MeasureCmd {
  cmd: 'measure';
  /** Frames with ts >= t0 (ms epoch) count; slow viewers start misbehaving at t0. */
  t0: number;
}

export interface ProbeCmd {
  cmd: 'probe';
  port: number;
  camera: string;
  variant: string;
  transport: Transport;
  intervalMs: number;
  count: number;
}

export interface ChurnCmd {
  cmd: 'churn';
  port: number;
  camera: string;
  variant: string;
  transport: Transport;
  concurrency: number;
  durationMs: number;
  maxCycles: number;
  firstFrameTimeoutMs: number;
}

export type SwarmCmd = OpenCmd | MeasureCmd | ProbeCmd | ChurnCmd | { cmd: 'report' } | { cmd: 'close' };

export interface OpenResult {
  opened: number;
  failed: number;
  /** ms epoch of the first connect attempt and of the last successful open. */
  firstStart: number;
  lastOpen: number;
  errorSamples: string[];
}

/** Window figures for one class of viewers (healthy or slow). */
export interface ClassStats {
  viewers: number;
  /** Viewers of this class per camera index, to compute expected frames. */
  viewersPerCamera: number[];
  frames: number;
  bytes: number;
  latency: SparseHistogram;
  /** Frames a viewer saw skipped by seq (per-topic sequence numbers; WS only). */
  seqGaps: number;
  /** Window frame count of each viewer, for the worst-viewer delivery figure. */
  perViewerFrames: number[];
  /** Closes the server started, by close code (HTTP transports: 1000 end, 1006 reset). */
  serverCloses: Record<string, number>;
}

export interface ChurnResult {
  cycles: number;
  errors: number;
  connect: SparseHistogram;
  firstFrame: SparseHistogram;
  errorSamples: string[];
}

export interface WorkerReport {
  pid: number;
  healthy: ClassStats;
  slow: ClassStats;
  /** connect start → first frame of every initially opened viewer. */
  ttff: SparseHistogram;
  /** connect start → open (101 or HTTP 200). */
  connect: SparseHistogram;
  probeTtff: SparseHistogram;
  probeErrors: number;
  errors: number;
  errorSamples: string[];
  /** Process CPU over the window: user+system ms, and wall ms. */
  cpuMs: number;
  wallMs: number;
  /** Event-loop utilisation over the window, 0..1: near 1 means this client was the bottleneck. */
  elu: number;
  eventLoopDelayP99Ms: number;
  rssBytes: number;
  /** Viewers open right now (opened and not closed since). */
  open: number;
  churn?: ChurnResult;
}

/** Sent every second while a worker runs; counters are cumulative. */
export interface Tick {
  ev: 'tick';
  frames: number;
  bytes: number;
  conns: number;
  cpuMs: number;
}

export type WorkerMsg = Tick | { ev: 'reply'; id: number; ok: boolean; data?: unknown; error?: string };
