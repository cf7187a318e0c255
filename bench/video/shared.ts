import type { SparseHistogram } from '../lib/histogram.js';

/** The types bench/video/run.ts and its forked viewer processes share. */

/** `count` WS viewers of one topic, all opened by one viewer process. */
export interface TopicViewers {
  topic: string;
  count: number;
}

/** What a viewer process is forked with (argv[2], JSON). */
export interface ViewersSpec {
  port: number;
  topics: TopicViewers[];
  /** Connections in flight at once while opening. */
  concurrency: number;
  connectTimeoutMs: number;
}

/** Parent → viewer process: the window (ms epoch) and how long to wait for stragglers after it. */
export interface WindowCmd {
  cmd: 'window';
  t0: number;
  t1: number;
  drainMs: number;
}

/** Viewer process → parent. */
export type ViewersMsg =
  | { ev: 'opened'; opened: number; failed: number; errorSamples: string[] }
  | { ev: 'report'; report: ViewersReport };

/** One topic's records stamped inside the window, as the viewers of one process saw them. */
export interface TopicReport {
  topic: string;
  viewers: number;
  /** Media records (`frame` or `fragment`) with t0 ≤ ts < t1 each viewer received. */
  perViewerRecords: number[];
  /** Their bytes (the whole WS message: msgpack record with its `data`). */
  bytes: number;
  /** Every seq seen in the window by any of these viewers: the topic's published records there. */
  seqs: number[];
  /** Records a viewer saw skipped by seq, summed (for `video`, the keyframe waits). */
  seqGaps: number;
  /** ts → receipt, ms. */
  latency: SparseHistogram;
  /** Closes the server started, by close code. */
  serverCloses: Record<string, number>;
}

export interface ViewersReport {
  pid: number;
  topics: TopicReport[];
  /** This process's CPU over the window, ms, and its event-loop utilisation (near 1: client-bound). */
  cpuMs: number;
  wallMs: number;
  elu: number;
  errors: number;
  errorSamples: string[];
}

/** One WS-level join (case 3): connect → the first keyframe fragment after the init. */
export interface JoinSample {
  topic: string;
  /** ms from the first join's start. */
  atMs: number;
  /** connect start → the first keyframe fragment (the first decodable picture); NaN if none came. */
  firstPictureMs: number;
  /** connect start → the init record. */
  initMs: number;
  /** Fragments that came flagged `cached` (the GOP cache's burst). */
  cachedFragments: number;
  error?: string;
}
