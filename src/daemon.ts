import uWS from 'uWebSockets.js';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ClusterBus } from './cluster/bus.js';
import { CameraLeases } from './cluster/camera-lease.js';
import { JobDirectory } from './cluster/job-directory.js';
import { LocalBus } from './cluster/local-bus.js';
import { RedisBus } from './cluster/redis-bus.js';
import { type Config, hasVideo, isPushCamera } from './config/schema.js';
import { WorkersBusyError } from './errors.js';
import { Hub } from './hub/hub.js';
import { maxGopBytes } from './hub/video-track.js';
import { AudioIngest } from './ingest/audio-ingest.js';
import { type CameraSource, createCameraSource } from './ingest/camera-source.js';
import { FrameIngest } from './ingest/frame-ingest.js';
import { routeRecords } from './ingest/record-router.js';
import { AudioJobs } from './jobs/audio-job.js';
import { lockDataDir } from './jobs/data-dir-lock.js';
import { ImageJobs } from './jobs/image-job.js';
import { JobStore } from './jobs/job-store.js';
import { UploadJobs } from './jobs/upload-jobs.js';
import { VideoJobs } from './jobs/video-job.js';
import type { Logger } from './log.js';
import { findClockFont, resolveFfmpegPath } from './media/ffmpeg-path.js';
import { createMetrics } from './metrics/metrics.js';
import { packageRoot } from './paths.js';
import type { RunVad } from './pool/tasks.js';
import { WorkerPool } from './pool/worker-pool.js';
import { assertAuthAllowedForHost, createAuthenticator } from './server/auth.js';
import { ProxyTrust } from './server/client-address.js';
import type { ServerContext } from './server/context.js';
import { CorsGate, createCorsPolicy } from './server/cors.js';
import { registerHttpRoutes } from './server/http.js';
import { guardRoutes } from './server/http-guard.js';
import { HttpStreams } from './server/http-stream.js';
import { registerJobs } from './server/jobs.js';
import { ConnectionBudget, ConnectionLimits } from './server/limits.js';
import { registerMjpeg } from './server/mjpeg.js';
import { registerNotices } from './server/notices.js';
import { registerPublisher } from './server/publish.js';
import { publishAudio } from './server/publish-audio.js';
import { registerSse } from './server/sse.js';
import { registerStatus } from './server/status.js';
import { registerUploadPreview } from './server/upload-preview.js';
import { registerVideoFiles } from './server/video-jobs.js';
import { createWsEndpoint } from './server/ws.js';
import { STOP_MARGIN_MS } from './shutdown.js';
import { registerTus } from './uploads/tus-routes.js';
import { TusStore, type TusUpload } from './uploads/tus-store.js';
import { loadRmsBackend } from './vad/backend.js';

export interface Daemon {
  url: string;
  port: number;
  stop(): Promise<void>;
}

const packageVersion = (dir: string): string =>
  (JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { version: string }).version;
const version = packageVersion(packageRoot);
/** The version of the package `uWebSockets.js` resolves to (the pinned npm republish). */
const uwsVersion = packageVersion(join(packageRoot, 'node_modules', 'uWebSockets.js'));

/**
 * Wires config into running parts: metrics, hub, worker pool, uWS app, camera sources.
 * Everything with a lifecycle is started here and stopped in reverse order by stop().
 */
export async function startDaemon(config: Config, log: Logger): Promise<Daemon> {
  assertAuthAllowedForHost(config.host, config.auth);
  const corsPolicy = createCorsPolicy(config.cors.origins, config.auth !== undefined);
  const auth = await createAuthenticator(config.auth);
  const startedAt = Date.now();
  const metrics = createMetrics(config.cameras.map((c) => c.id));
  // Node ends the process on an unhandled rejection. Every promise a client can start is
  // handled where it is made; this is the net under that rule, counted so a miss shows up.
  const onUnhandled = (err: unknown) => {
    metrics.handlerErrors.labels('unhandled_rejection').inc();
    log.error({ err }, 'unhandled promise rejection (a bug: please report it)');
  };
  process.on('unhandledRejection', onUnhandled);
  const cameras = new Map(config.cameras.map((c) => [c.id, c]));
  const video = new Map(
    config.cameras
      .filter(hasVideo)
      .map((c) => [
        c.id,
        { gopCache: c.videoGopCache ?? true, maxGopBytes: maxGopBytes(config.viewers.videoSoftBufferBytes) },
      ]),
  );
  const hub = new Hub(new Set(cameras.keys()), metrics, config.viewers.historyPerTopic, video);
  let ready = false;
  // The cluster bus (README "Scaling out"): without a Redis URL, one node and nothing crosses.
  // Its hooks read the viewer groups made further down, only from its timers.
  const cluster = config.cluster;
  const redisBus = cluster.redisUrl
    ? new RedisBus({
        url: cluster.redisUrl,
        redisCluster: cluster.redisCluster,
        nodeId: cluster.nodeId,
        ingest: cluster.ingest,
        hub,
        metrics,
        log,
        hooks: {
          localSubscribers: (topic) => ws.subscribers(topic) + streams.subscribers(topic),
          // Once a second, for the heartbeat: a walk over the sessions, never per frame.
          viewers: () => {
            const http = streams.census().byTransport;
            return ws.census().total + http.sse + http.mjpeg;
          },
        },
        pushCameras: config.cameras.filter(isPushCamera).map((c) => c.id),
        latestFrameTtlMs: cluster.latestFrameTtlMs,
        jobTtlMs: config.jobs.ttlSeconds * 1000,
        onReconnect: () => leases?.reconnected(),
        // `ingest` exists before the bus is started, so before any frame arrives.
        onRemoteSeq: (camera, seq) => ingest.seedSeq(camera, seq),
      })
    : undefined;
  const bus: ClusterBus = redisBus ?? new LocalBus(cluster.nodeId);
  let leases: CameraLeases | undefined;

  // Workers pick the same backend (same FRAMEHUB_VAD_BACKEND, same addon); loading it here
  // reports the choice once at start and fails fast when `native` is forced but missing.
  // Worker threads read the choice from the environment they inherit when the pool starts.
  process.env.FRAMEHUB_VAD_BACKEND = config.vadBackend;
  const vadBackend = loadRmsBackend(config.vadBackend);
  metrics.vadBackendInfo.labels(vadBackend.name).set(1);
  metrics.buildInfo.labels(version, process.version, uwsVersion, vadBackend.name).set(1);
  // `detail` says what runs and, after a fallback to JS, why (the addon's load error).
  log.info({ backend: vadBackend.name, detail: vadBackend.detail }, 'vad backend');

  // The VAD streams feed the pool and the pool's ring feeds them back: runVad is only called
  // after start-up, by which time `pool` exists.
  const runVad: RunVad = (task) => pool.runVad(task);
  const audio = new AudioIngest(hub, metrics, runVad, config.vad, log);
  const jobStore = new JobStore(hub, metrics, config.jobs.ttlSeconds * 1000, (job) => {
    if (job.kind === 'video') {
      videoJobs
        .forget(job.id)
        .catch((err: unknown) => log.warn({ err, job: job.id }, 'could not remove an expired video job'));
    }
    if (job.kind !== 'image') return;
    imageJobs
      .forget(job.id)
      .catch((err: unknown) => log.warn({ err, job: job.id }, 'could not remove an expired job'));
  });
  // Several nodes: every job's state is in Redis too, so GET /api/v1/jobs/<id> answers from any node.
  const jobDirectory =
    redisBus && new JobDirectory(redisBus.redis, bus.nodeId, config.jobs.ttlSeconds * 1000, log);
  if (jobDirectory) jobStore.onChange = (view, final) => jobDirectory.record(view, final);
  const ffmpegPath = resolveFfmpegPath(config.ffmpegPath);
  // Before anything empties a directory under it: a second daemon there is refused.
  const releaseDataDir = lockDataDir(config.jobs.dataDir);
  const audioJobs = new AudioJobs({
    store: jobStore,
    run: runVad,
    tuning: config.vad,
    ffmpegPath,
    limits: config.jobs,
    log,
    onSpeed: (speed) => metrics.ffmpegSpeed.labels('audio').observe(speed),
  });
  const imageJobs: ImageJobs = new ImageJobs({
    store: jobStore,
    run: (task, control) => pool.runImageJob(task, control),
    resultsDir: join(config.jobs.dataDir, 'results'),
    workDir: join(config.jobs.dataDir, 'work'),
    maxPixels: config.images.maxPixels,
    timeoutSeconds: config.jobs.imageTimeoutSeconds,
    onStoredBytes: (bytes) => metrics.jobResultBytes.set(bytes),
    log,
  });
  await imageJobs.init();
  const videoJobs: VideoJobs = new VideoJobs({
    store: jobStore,
    publish: (topic, body) => hub.publishEvent(topic, body),
    ffmpegPath,
    workDir: join(config.jobs.dataDir, 'work'),
    resultsDir: join(config.jobs.dataDir, 'videos'),
    limits: config.jobs.video,
    nice: config.jobs.nice,
    onStoredBytes: (bytes) => metrics.jobDiskBytes.set(bytes),
    onSpeed: (speed) => metrics.ffmpegSpeed.labels('video').observe(speed),
    log,
  });
  await videoJobs.init();
  const pool = new WorkerPool({
    ...config.pool,
    liveCameras: config.cameras.length > 0,
    jobNice: config.jobs.nice,
    log,
    metrics,
    onRecord: routeRecords({ hub, audio, jobs: audioJobs, imageJobs }),
  });

  const v = config.viewers;
  const ctx: ServerContext = {
    hub,
    metrics,
    log,
    auth,
    limits: new ConnectionLimits(v),
    slow: {
      softBytes: v.softBufferBytes,
      videoSoftBytes: v.videoSoftBufferBytes,
      hardBytes: v.hardBufferBytes,
      slowCloseMs: v.slowCloseMs,
    },
    adaptive: { downAfterMs: v.adaptiveDownMs, upAfterMs: v.adaptiveUpMs },
    maxTopicsPerConnection: v.maxTopicsPerConnection,
    sseHeartbeatMs: v.sseHeartbeatSeconds * 1000,
    unauthenticated: new ConnectionBudget(config.ws.maxUnauthenticated, config.ws.maxUnauthenticatedPerIp),
    proxy: new ProxyTrust(config.trustProxy, config.authOffTrustsProxy),
    snapshotSource: redisBus,
    demand: redisBus ? (topic) => redisBus.wanted(topic) : undefined,
  };
  const limitSweep = setInterval(() => ctx.limits.sweep(), 10_000);
  limitSweep.unref();

  const app = guardRoutes(uWS.App(), { metrics, log, cors: new CorsGate(corsPolicy, { metrics, log }) });
  const ws = createWsEndpoint(app, ctx, { ...config.ws, sweepIntervalMs: 100 });
  const streams = new HttpStreams(ctx);
  hub.addSink(ws.sink);
  hub.addSink(streams);
  if (redisBus) hub.addSink(redisBus);
  const localDemand = (topic: string) => ws.subscribers(topic) + streams.subscribers(topic) > 0;
  const hasDemand = redisBus
    ? (topic: string) => localDemand(topic) || redisBus.remoteDemand(topic)
    : localDemand;
  const ingest = new FrameIngest(pool, hasDemand, {
    maxPixels: config.images.maxPixels,
    metrics,
    log,
    speechOf: (camera) => audio.speaking(camera),
  });

  registerPublisher(
    app,
    ctx,
    { maxPayloadBytes: config.ws.publisherMaxPayloadBytes, idleTimeoutSeconds: config.ws.idleTimeoutSeconds },
    cameras,
    ingest,
    new Map([['audio', publishAudio(audio)]]),
  );
  registerJobs(
    app,
    ctx,
    jobStore,
    { audio: audioJobs, image: imageJobs, video: videoJobs, pool },
    config.jobs,
    jobDirectory,
  );
  registerVideoFiles(app, ctx, videoJobs);
  const uploadJobs: UploadJobs = new UploadJobs({
    hub,
    imageJobs,
    filePath: (u) => tusStore.filePath(u),
    runPreview: (task, control) => pool.runPreview(task, control),
    maxPixels: config.images.maxPixels,
    log,
  });
  const tusStore = await TusStore.open({
    dir: config.uploads.dir ?? join(config.jobs.dataDir, 'uploads'),
    maxUploadBytes: config.uploads.maxUploadBytes,
    maxUploads: config.uploads.maxUploads,
    expireMs: config.uploads.expireSeconds * 1000,
    onRemoved: (u) => {
      uploadJobs.forget(u.id);
      // An upload that never became a job leaves no job to expire its events with.
      if (!jobStore.get(u.id)) hub.forgetTopic(`job/${u.id}`);
    },
    log,
  });
  /** Once its job has the bytes, a completed upload would only count against uploads.maxUploads. */
  const completeUpload = (u: TusUpload) => {
    const remove = (retries: number): Promise<void> =>
      tusStore.remove(u).catch(async (err: unknown) => {
        // A request may still hold the upload (an empty PATCH at its end): try again once it is done.
        if (retries === 0) return log.warn({ err, upload: u.id }, 'could not remove a completed upload');
        await new Promise((r) => setTimeout(r, 1000));
        return remove(retries - 1);
      });
    void uploadJobs.complete(u).finally(() => remove(3));
  };
  registerTus(
    app,
    ctx,
    tusStore,
    { maxMetadataBytes: config.uploads.maxMetadataBytes },
    {
      checkMetadata: (metadata) => uploadJobs.optionsOf(metadata),
      onProgress: (u) => uploadJobs.progress(u),
      onComplete: completeUpload,
    },
  );
  // Complete uploads whose job never started: the process stopped between the last byte and the job.
  for (const u of tusStore.list()) if (u.offset === u.length) completeUpload(u);
  registerUploadPreview(app, ctx, uploadJobs);
  registerSse(app, ctx, streams);
  registerMjpeg(app, ctx, streams);
  const sourceDeps = { ingest, audio, hub, ffmpegPath, clockFont: findClockFont(), log, metrics };
  // The cameras this node runs. With Redis, an ffmpeg camera runs only while this node holds its
  // lease (cluster/camera-lease.ts); push cameras need none (frames publish where the publisher is).
  const sources = new Map<string, CameraSource>();
  const leased = new Set(redisBus ? config.cameras.filter((c) => !isPushCamera(c)).map((c) => c.id) : []);
  for (const cam of config.cameras) {
    if (!leased.has(cam.id)) sources.set(cam.id, createCameraSource(cam, sourceDeps));
  }
  if (redisBus && cluster.ingest && leased.size) {
    const vadTopic = (camera: string) => `cam/${camera}/vad`;
    leases = new CameraLeases(
      redisBus.redis,
      bus.nodeId,
      [...leased],
      cluster.leaseMs,
      {
        acquired(camera, token, seqs) {
          const cam = cameras.get(camera)!;
          // Continue after the previous owner's last recorded seqs, past what it can have made
          // since (at most one lease period of frames), so seq keeps increasing for viewers.
          ingest.seedSeq(camera, seqs.frame + Math.ceil((cam.fps * cluster.leaseMs) / 1000) + 1);
          hub.seedEventSeq(vadTopic(camera), seqs.vad + 16);
          bus.setOwned(camera, true, token);
          const source = createCameraSource(cam, sourceDeps);
          sources.set(camera, source);
          source.start();
        },
        retaken(camera, token) {
          bus.setOwned(camera, true, token);
        },
        lost(camera) {
          const source = sources.get(camera);
          sources.delete(camera);
          bus.setOwned(camera, false);
          source?.stop().catch((err: unknown) => log.warn({ err, camera }, 'could not stop a camera'));
        },
        seqs: (camera) => ({ frame: ingest.seqOf(camera), vad: hub.eventSeqOf(vadTopic(camera)) }),
        mayAcquire: () => bus.up(),
      },
      log,
    );
  }
  registerStatus(app, ctx, {
    version,
    startedAt,
    cameras: () => [...sources.values()].flatMap((s) => s.status() ?? []),
    pool: () => pool.stats(),
    ws: () => ws.census(),
    streams: () => streams.census(),
    cluster: () => bus.status(),
  });
  registerNotices(app, ctx);
  registerHttpRoutes(app, { metrics, log, isReady: () => ready, busUp: () => bus.up(), version });

  const listenSocket = await new Promise<uWS.us_listen_socket>((resolve, reject) => {
    app.listen(config.host, config.port, (socket) =>
      socket ? resolve(socket) : reject(new Error(`cannot listen on ${config.host}:${config.port}`)),
    );
  });
  const port = uWS.us_socket_local_port(listenSocket);
  const url = `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${port}`;
  await bus.start();
  for (const s of sources.values()) s.start();
  leases?.start();

  ready = true;
  log.info(
    {
      url,
      host: config.host,
      port,
      cameras: [...cameras.keys()],
      node: bus.nodeId,
      cluster: redisBus !== undefined,
      threads: pool.threads,
      auth: auth.enabled,
      trustProxy: config.trustProxy,
      vadBackend: vadBackend.name,
    },
    'listening',
  );

  return {
    url,
    port,
    async stop() {
      // Bounded by shutdown.deadlineMs: workers are terminated at once, and one still inside a
      // native call near the deadline is reported (WorkersBusyError), not waited for.
      const deadline = Date.now() + config.shutdown.deadlineMs - STOP_MARGIN_MS;
      ready = false;
      uWS.us_listen_socket_close(listenSocket);
      clearInterval(limitSweep);
      ws.closeAll();
      streams.closeAll();
      audioJobs.stopAll();
      imageJobs.stopAll();
      videoJobs.stopAll();
      await Promise.all([...sources.values()].map((s) => s.stop()));
      // Leases go back once their cameras stopped: another node may take them at once.
      await leases?.stop();
      await bus.stop();
      // Connections close before the pool: an upload cut by the close records its offset (and
      // asks for no preview of a closed pool).
      app.close();
      await tusStore.close();
      const workersExited = await pool.close(Math.max(0, deadline - Date.now()));
      releaseDataDir();
      process.off('unhandledRejection', onUnhandled);
      if (!workersExited) throw new WorkersBusyError();
    },
  };
}
