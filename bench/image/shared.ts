/** Types shared by bench/image/run.ts and the cases it forks. */

/** One resize-and-encode, as an image job's query asks for it and as bare sharp does it. */
export interface ImageOp {
  format: 'jpeg' | 'webp' | 'avif';
  quality: number;
  width: number;
  /** With height, the box is width × height and `fit` applies (imgproxy's rs:fit:512:512). */
  height?: number;
  fit: 'inside';
  /**
   * Bare sharp only: false encodes JPEG with libjpeg's defaults, as imgproxy does by default
   * (its trellis quantisation, deringing and progressive options are off), rather than with
   * sharp's mozjpeg preset, which the jobs use.
   */
  mozjpeg?: false;
}

/** A closed-loop window: `clients` loops, each starting its next image when its last one is done. */
export interface LoadWindow {
  clients: number;
  warmupSeconds: number;
  seconds: number;
}

/** What one window measured, for framehub and for bare sharp alike. */
export interface WindowResult {
  /** Images finished inside the window. */
  images: number;
  imagesPerSecond: number;
  /** Per image finished in the window, ms: from its request (or sharp call) to its last byte. */
  latencyMs: number[];
  /** Mean bytes of one output. */
  outputBytes: number;
  /** CPU ms per image of the process doing the work (bare sharp; framehub's daemon), every thread. */
  cpuMsPerImage: number;
  /** The same, of its main thread alone. */
  mainThreadCpuMsPerImage: number;
  /** framehub only: CPU ms per image of the bench process acting as the clients. */
  clientCpuMsPerImage?: number;
  /** framehub only: the pool's image workers' busy share (task time over threads × window), %. */
  workersBusyPct?: number;
  /** Busy share of all cores over the window, other tenants included, %. */
  machineBusyPct: number;
  /** The work's own share of all cores (server and clients, or bare sharp), %. */
  ownBusyPct: number;
}

/** A bare-sharp case: the same op in a fresh process, sharp.concurrency(1), `clients` calls at once. */
export interface BareSpec {
  files: string[];
  op: ImageOp;
  window: LoadWindow;
}

/** A variant-set case: makeVariants over camera frames, one frame at a time. */
export interface VariantsSpec {
  files: string[];
  variants: ('low' | 'medium' | 'high' | 'annotated')[];
  warmupFrames: number;
  /** Frames are made until both limits are reached or maxFrames is. */
  minSeconds: number;
  minFrames: number;
  maxFrames: number;
}

export interface VariantsResult {
  spec: VariantsSpec;
  frames: number;
  cpuMsPerFrame: number;
  framesPerCpuSecond: number;
  /** One frame at a time (its variants in parallel on libuv threads): not a throughput ceiling. */
  wallMsPerFrame: number;
}
