/** One case of the thread-pool bench: a fresh process with this many image workers and libuv threads. */
export interface CaseSpec {
  /** pool.threads: image worker threads. */
  threads: number;
  /** UV_THREADPOOL_SIZE the case process is started with: the libuv threads sharp runs on. */
  uv: number;
  /** Cameras fed at once; each has at most one frame in a worker (the pool's fairness rule). */
  cameras: number;
  warmupSeconds: number;
  seconds: number;
  /** Directory of NNN.jpg camera frames, as ffmpeg produced them. */
  framesDir: string;
  width: number;
  height: number;
}

export interface CaseResult {
  spec: CaseSpec;
  /** Camera frames turned into every variant, per second, over the measured window. */
  framesPerSecond: number;
  /** Process CPU (main, workers and libuv threads) per finished frame, in ms. */
  cpuMsPerFrame: number;
  /** Process CPU seconds per wall second over the window: how many cores the case kept busy. */
  coresBusy: number;
  /** Frames the pool dropped in the window (pool_busy, ring_full, worker errors): should be 0. */
  dropped: number;
}
