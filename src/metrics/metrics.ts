import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import {
  AUTH_REASONS,
  AUTH_TRANSPORTS,
  BUS_DIRECTIONS,
  DROP_REASONS,
  FFMPEG_JOB_KINDS,
  HANDLERS,
  JOB_KINDS,
  JOB_OUTCOMES,
  LIMITS,
  POOL_PRIORITIES,
  POOL_TASKS,
  VIDEO_TRANSPORTS,
  VIEWER_TRANSPORTS,
  WS_ERROR_CODES,
} from './label-values.js';

/** Tiers of the pool's priority queue (pool/priority-queue.ts), most urgent first. */
const TIERS = ['urgent', 'high', 'normal', 'low'] as const;

/** Live latencies, 1 ms to 2 s: a frame later than 2 s is as bad as lost. */
const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1, 2];
/** Pool task run and wait times, 1 ms (a VAD chunk) to 60 s (an image job's deadline). */
const TASK_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
/** Whole jobs: 10 ms (a small image) to 30 min (a long video on two cores). */
const JOB_BUCKETS = [0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 120, 300, 600, 1800];
/** ffmpeg speed (media seconds per wall second): below 1 a clip takes longer than it lasts; an audio decode runs far faster than real time. */
const SPEED_BUCKETS = [0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024];

/** Pool state read from shared memory at scrape time instead of being maintained per record. */
export interface PoolSample {
  /** Tasks submitted and not yet finished, by priority. */
  pending: { live: number; job: number };
  /** Tasks waiting in the priority queue, by tier. */
  queued: Record<string, number>;
  /** Job-tier tasks on workers (capped at pool.queue.maxRunningJobs). */
  runningJobs: number;
  rings: { usedBytes: number; capacity: number; fullEvents: number }[];
  /** Worker threads (pool.threads). */
  threads: number;
  /** The most tasks each tier may queue (pool.queue.maxPerTier). */
  queueLimits: Record<string, number>;
}

/** What `framehub_build_info` says: which build is running where. */
export interface BuildInfo {
  version: string;
  node: string;
  uws: string;
  vad_backend: string;
}

/**
 * Every metric the daemon exports, on one registry. Components receive this object and bind
 * label children once (e.g. per camera at start-up), so the hot path is a plain inc() with no
 * label-object allocation. No per-connection labels: cardinality is bounded by config.
 */
export function createMetrics(cameras: readonly string[] = []) {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'framehub_' });
  // prom-client also exports these three gauges as `*_total`, which promtool flags (a `_total`
  // that is not a counter); the same values stay as framehub_nodejs_active_{handles,requests,resources}.
  for (const kind of ['handles', 'requests', 'resources']) {
    registry.removeSingleMetric(`framehub_nodejs_active_${kind}_total`);
  }
  const r = [registry];
  const samplers: { pool?: () => PoolSample } = {};
  let ringFullSeen = 0;

  const metrics = {
    registry,
    /** Lets the pool expose its shared-memory state to scrapes without depending on prom-client. */
    samplePool(sampler: () => PoolSample): void {
      samplers.pool = sampler;
    },
    buildInfo: new Gauge({
      name: 'framehub_build_info',
      help: 'Always 1: the running build (version, Node.js, uWebSockets.js, VAD backend) in its labels',
      labelNames: ['version', 'node', 'uws', 'vad_backend'],
      registers: r,
    }),
    busUp: new Gauge({
      name: 'framehub_bus_up',
      help: 'Whether the cluster bus (Redis) is connected: 1 up, 0 down; 1 without a Redis URL (one node, nothing to lose)',
      registers: r,
    }),
    busDisconnects: new Counter({
      name: 'framehub_bus_disconnects_total',
      help: 'Times a connection to the cluster bus (Redis) was lost after it was up',
      registers: r,
    }),
    busMessages: new Counter({
      name: 'framehub_bus_messages_total',
      help: 'Frames and events published to the cluster bus (out) or taken from it (in)',
      labelNames: ['direction'],
      registers: r,
    }),
    connections: new Gauge({
      name: 'framehub_connections',
      help: 'Open viewer connections by transport',
      labelNames: ['transport'],
      registers: r,
    }),
    connects: new Counter({
      name: 'framehub_connects_total',
      help: 'Viewer connections opened (admitted past limits and auth), by transport',
      labelNames: ['transport'],
      registers: r,
    }),
    disconnects: new Counter({
      name: 'framehub_disconnects_total',
      help: 'Viewer connections closed, for any reason, by transport',
      labelNames: ['transport'],
      registers: r,
    }),
    framesIn: new Counter({
      name: 'framehub_camera_frames_in_total',
      help: 'JPEG frames received from each camera (from its ffmpeg or its publisher), refused ones included',
      labelNames: ['camera'],
      registers: r,
    }),
    cameraUp: new Gauge({
      name: 'framehub_camera_up',
      help: '1 while the camera ffmpeg process is delivering frames',
      labelNames: ['camera'],
      registers: r,
    }),
    cameraRestarts: new Counter({
      name: 'framehub_camera_restarts_total',
      help: 'Camera ffmpeg process restarts',
      labelNames: ['camera'],
      registers: r,
    }),
    ffmpegProcesses: new Gauge({
      name: 'framehub_ffmpeg_processes',
      help: 'Running ffmpeg child processes',
      registers: r,
    }),
    framesSent: new Counter({
      name: 'framehub_frames_sent_total',
      help: 'Frame records handed to viewers, by transport',
      labelNames: ['transport'],
      registers: r,
    }),
    bytesSent: new Counter({
      name: 'framehub_bytes_sent_total',
      help: 'Payload bytes handed to viewers, by transport',
      labelNames: ['transport'],
      registers: r,
    }),
    framesDropped: new Counter({
      name: 'framehub_frames_dropped_total',
      help: 'Frames not delivered, by reason; keyframe_wait (live video fragments a viewer skipped until the next keyframe) is also labelled by transport',
      labelNames: ['reason', 'transport'],
      registers: r,
    }),
    ingestToSend: new Histogram({
      name: 'framehub_ingest_to_send_seconds',
      help: 'Time from camera capture to publish to viewers',
      buckets: LATENCY_BUCKETS,
      registers: r,
    }),
    poolQueueDepth: new Gauge({
      name: 'framehub_pool_queue_depth',
      help: 'Pool tasks submitted and not finished (queued or running), by priority (live, job)',
      labelNames: ['priority'],
      registers: r,
      collect() {
        const pool = samplers.pool?.();
        if (!pool) return;
        this.labels('live').set(pool.pending.live);
        this.labels('job').set(pool.pending.job);
      },
    }),
    poolQueued: new Gauge({
      name: 'framehub_pool_queued_tasks',
      help: 'Tasks waiting in the pool queue, by tier (urgent, high, normal, low)',
      labelNames: ['tier'],
      registers: r,
      collect() {
        const pool = samplers.pool?.();
        if (!pool) return;
        for (const [tier, n] of Object.entries(pool.queued)) this.labels(tier).set(n);
      },
    }),
    poolQueueWait: new Histogram({
      name: 'framehub_pool_queue_wait_seconds',
      help: 'Time from submission until a worker takes the task, by tier (0 when a worker was free)',
      labelNames: ['tier'],
      buckets: TASK_BUCKETS,
      registers: r,
    }),
    poolPromotions: new Counter({
      name: 'framehub_pool_queue_promotions_total',
      help: 'Tasks that aging (pool.queue.agingMs) let run ahead of a higher tier, by their tier',
      labelNames: ['tier'],
      registers: r,
    }),
    poolRunningJobs: new Gauge({
      name: 'framehub_pool_running_jobs',
      help: 'Job-tier tasks (normal, low) on workers; at most pool.queue.maxRunningJobs, so live work always finds a worker',
      registers: r,
      collect() {
        const pool = samplers.pool?.();
        if (pool) this.set(pool.runningJobs);
      },
    }),
    poolJobTerminations: new Counter({
      name: 'framehub_pool_job_terminations_total',
      help: 'Running jobs (image jobs, previews) stopped by a cancel or a deadline: their job process killed',
      registers: r,
    }),
    taskDuration: new Histogram({
      name: 'framehub_pool_task_duration_seconds',
      help: 'Worker task run time, by task (image, vad, and for jobs from a worker taking it: image_job, preview)',
      labelNames: ['task'],
      buckets: TASK_BUCKETS,
      registers: r,
    }),
    poolThreads: new Gauge({
      name: 'framehub_pool_threads',
      help: 'Worker threads in the pool; utilisation is rate(framehub_pool_task_duration_seconds_sum) over this',
      registers: r,
      collect() {
        const pool = samplers.pool?.();
        if (pool) this.set(pool.threads);
      },
    }),
    poolQueueLimit: new Gauge({
      name: 'framehub_pool_queue_limit',
      help: 'The most tasks a tier may queue (pool.queue.maxPerTier); queued / limit is saturation',
      labelNames: ['tier'],
      registers: r,
      collect() {
        const pool = samplers.pool?.();
        if (!pool) return;
        for (const [tier, n] of Object.entries(pool.queueLimits)) this.labels(tier).set(n);
      },
    }),
    imageEncode: new Histogram({
      name: 'framehub_image_encode_seconds',
      help: 'sharp time per live frame in its worker: resize and encode of every variant asked for (header check and ring write excluded)',
      buckets: TASK_BUCKETS,
      registers: r,
    }),
    ringFill: new Gauge({
      name: 'framehub_ring_fill_ratio',
      help: 'Fraction of each worker ring in use, sampled at scrape',
      labelNames: ['ring'],
      registers: r,
      collect() {
        samplers.pool?.().rings.forEach((ring, i) => {
          this.labels(String(i)).set(ring.usedBytes / ring.capacity);
        });
      },
    }),
    ringFull: new Counter({
      name: 'framehub_ring_full_total',
      help: 'Times a worker found its ring full and had to wait',
      registers: r,
      collect() {
        const full = samplers.pool?.().rings.reduce((sum, ring) => sum + ring.fullEvents, 0) ?? ringFullSeen;
        this.inc(full - ringFullSeen);
        ringFullSeen = full;
      },
    }),
    imageBytesIn: new Counter({
      name: 'framehub_image_bytes_in_total',
      help: 'JPEG bytes given to image workers',
      registers: r,
    }),
    imageBytesOut: new Counter({
      name: 'framehub_image_bytes_out_total',
      help: 'JPEG bytes produced by image workers (variants)',
      registers: r,
    }),
    slowViewers: new Gauge({
      name: 'framehub_slow_viewers',
      help: 'Viewers currently over the soft buffer limit and skipping frames, by transport',
      labelNames: ['transport'],
      registers: r,
    }),
    slowDisconnects: new Counter({
      name: 'framehub_slow_disconnects_total',
      help: 'Viewers closed for staying over the hard buffer limit, by transport',
      labelNames: ['transport'],
      registers: r,
    }),
    variantSwitches: new Counter({
      name: 'framehub_variant_switches_total',
      help: 'Adaptive (variant=auto) quality switches, by transport',
      labelNames: ['transport'],
      registers: r,
    }),
    limitRejections: new Counter({
      name: 'framehub_limit_rejections_total',
      help: 'Connections or subscriptions refused by a limit',
      labelNames: ['limit'],
      registers: r,
    }),
    authFailures: new Counter({
      name: 'framehub_auth_failures_total',
      help: 'Requests or connections refused for a missing or invalid token, by transport and the failing check (reason)',
      labelNames: ['transport', 'reason'],
      registers: r,
    }),
    vadSpeechActive: new Gauge({
      name: 'framehub_vad_speech_active',
      help: '1 while the VAD hears speech on a camera',
      labelNames: ['camera'],
      registers: r,
    }),
    vadSegments: new Counter({
      name: 'framehub_vad_segments_total',
      help: 'Closed speech segments per camera',
      labelNames: ['camera'],
      registers: r,
    }),
    vadFrames: new Counter({
      name: 'framehub_vad_frames_total',
      help: 'Audio frames analysed by the VAD, by backend (native, js)',
      labelNames: ['backend'],
      registers: r,
    }),
    vadBackendInfo: new Gauge({
      name: 'framehub_vad_backend_info',
      help: '1 for the VAD backend in use',
      labelNames: ['backend'],
      registers: r,
    }),
    vadOverruns: new Counter({
      name: 'framehub_vad_overrun_samples_total',
      help: 'Live audio samples dropped because the pool fell behind (the stream restarts)',
      labelNames: ['camera'],
      registers: r,
    }),
    vadChunkFailures: new Counter({
      name: 'framehub_vad_chunk_failures_total',
      help: 'Live VAD chunks that failed in the pool (the camera audio stream restarts)',
      labelNames: ['camera'],
      registers: r,
    }),
    jobs: new Counter({
      name: 'framehub_jobs_total',
      help: 'Finished jobs by kind and outcome (done, failed, cancelled)',
      labelNames: ['kind', 'outcome'],
      registers: r,
    }),
    jobDuration: new Histogram({
      name: 'framehub_job_duration_seconds',
      help: 'Job run time from acceptance to its last state, by kind (cancelled and failed jobs included)',
      labelNames: ['kind'],
      buckets: JOB_BUCKETS,
      registers: r,
    }),
    ffmpegSpeed: new Histogram({
      name: 'framehub_ffmpeg_speed_ratio',
      help: 'Speed of each finished job ffmpeg run (media seconds per wall second: the video encode, the audio decode), by job kind',
      labelNames: ['kind'],
      buckets: SPEED_BUCKETS,
      registers: r,
    }),
    jobResultBytes: new Gauge({
      name: 'framehub_job_result_bytes',
      help: 'Bytes of job results stored on disk (under jobs.dataDir), until their jobs expire',
      registers: r,
    }),
    jobDiskBytes: new Gauge({
      name: 'framehub_job_disk_bytes',
      help: 'Bytes video jobs hold on disk under jobs.dataDir: uploads until their job ends, outputs until it expires',
      registers: r,
    }),
    jobSlots: new Gauge({
      name: 'framehub_job_slots_used',
      help: 'Job slots in use, of jobs.maxActive: uploads being received or checked, and jobs not finished',
      registers: r,
    }),
    handlerErrors: new Counter({
      name: 'framehub_handler_errors_total',
      help: 'Exceptions caught in a request, message or callback handler (each answered with an error, never fatal), by handler',
      labelNames: ['handler'],
      registers: r,
    }),
    wsErrors: new Counter({
      name: 'framehub_ws_errors_total',
      help: 'Error records sent to WebSocket clients, by code',
      labelNames: ['code'],
      registers: r,
    }),
  };
  initialiseSeries(metrics, cameras);
  return metrics;
}

export type Metrics = ReturnType<typeof createMetrics>;

/**
 * Gives every known series its 0 (see label-values.ts for why). Histograms get their children
 * too, so a quantile panel has buckets to read. `framehub_build_info` and the VAD backend are
 * set where the daemon knows them.
 */
function initialiseSeries(m: Metrics, cameras: readonly string[]): void {
  // framehub_camera_up is left to each ffmpeg camera's supervisor: a push camera has none, so
  // it never reads as a camera down.
  for (const camera of cameras) {
    m.vadSpeechActive.labels(camera).set(0);
    for (const c of [m.framesIn, m.cameraRestarts, m.vadSegments, m.vadOverruns, m.vadChunkFailures]) {
      c.labels(camera).inc(0);
    }
  }
  for (const transport of VIEWER_TRANSPORTS) {
    for (const g of [m.connections, m.slowViewers]) g.labels(transport).set(0);
    for (const c of [
      m.connects,
      m.disconnects,
      m.framesSent,
      m.bytesSent,
      m.slowDisconnects,
      m.variantSwitches,
    ]) {
      c.labels(transport).inc(0);
    }
  }
  for (const reason of DROP_REASONS) m.framesDropped.labels({ reason }).inc(0);
  for (const transport of VIDEO_TRANSPORTS)
    m.framesDropped.labels({ reason: 'keyframe_wait', transport }).inc(0);
  for (const limit of LIMITS) m.limitRejections.labels(limit).inc(0);
  m.busUp.set(1);
  m.busDisconnects.inc(0);
  for (const direction of BUS_DIRECTIONS) m.busMessages.labels(direction).inc(0);
  for (const transport of AUTH_TRANSPORTS) {
    for (const reason of AUTH_REASONS) m.authFailures.labels(transport, reason).inc(0);
  }
  for (const code of WS_ERROR_CODES) m.wsErrors.labels(code).inc(0);
  for (const handler of HANDLERS) m.handlerErrors.labels(handler).inc(0);
  for (const kind of JOB_KINDS) {
    m.jobDuration.zero({ kind });
    for (const outcome of JOB_OUTCOMES) m.jobs.labels(kind, outcome).inc(0);
  }
  for (const kind of FFMPEG_JOB_KINDS) m.ffmpegSpeed.zero({ kind });
  for (const task of POOL_TASKS) m.taskDuration.zero({ task });
  for (const tier of TIERS) {
    m.poolQueueWait.zero({ tier });
    m.poolPromotions.labels(tier).inc(0);
  }
  for (const priority of POOL_PRIORITIES) m.poolQueueDepth.labels(priority).set(0);
  for (const backend of ['native', 'js']) m.vadFrames.labels(backend).inc(0);
  for (const g of [m.ffmpegProcesses, m.jobResultBytes, m.jobDiskBytes, m.jobSlots]) g.set(0);
}
