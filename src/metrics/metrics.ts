import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

/** Pool state read from shared memory at scrape time instead of being maintained per record. */
export interface PoolSample {
  /** Tasks submitted and not yet finished, by priority. */
  pending: { live: number; job: number };
  /** Tasks waiting in the priority queue, by tier. */
  queued: Record<string, number>;
  /** Job-tier tasks on workers (capped at pool.queue.maxRunningJobs). */
  runningJobs: number;
  rings: { usedBytes: number; capacity: number; fullEvents: number }[];
}

/**
 * Every metric the daemon exports, on one registry. Components receive this object and bind
 * label children once (e.g. per camera at start-up), so the hot path is a plain inc() with no
 * label-object allocation. No per-connection labels: cardinality is bounded by config.
 */
export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'framehub_' });
  const r = [registry];
  const samplers: { pool?: () => PoolSample } = {};
  let ringFullSeen = 0;

  return {
    registry,
    /** Lets the pool expose its shared-memory state to scrapes without depending on prom-client. */
    samplePool(sampler: () => PoolSample): void {
      samplers.pool = sampler;
    },
    connections: new Gauge({
      name: 'framehub_connections',
      help: 'Open viewer connections by transport',
      labelNames: ['transport'],
      registers: r,
    }),
    framesIn: new Counter({
      name: 'framehub_camera_frames_in_total',
      help: 'JPEG frames read from each camera',
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
      help: 'Frames not delivered, by reason (pool_busy, ring_full, stale, slow, worker_error, too_large, refused, corrupt, superseded; keyframe_wait: live video fragments a viewer skipped until the next keyframe, also labelled by transport)',
      labelNames: ['reason', 'transport'],
      registers: r,
    }),
    ingestToSend: new Histogram({
      name: 'framehub_ingest_to_send_seconds',
      help: 'Time from camera capture to publish to viewers',
      buckets: [0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28],
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
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
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
      help: 'Worker threads terminated to stop the job running in them (cancelled, timed out, shutdown); piscina starts a replacement',
      registers: r,
    }),
    taskDuration: new Histogram({
      name: 'framehub_pool_task_duration_seconds',
      help: 'Worker task run time, by task (image, vad, and for jobs from a worker taking it: image_job, preview)',
      labelNames: ['task'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 5],
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
}

export type Metrics = ReturnType<typeof createMetrics>;
