/**
 * The Chromium cases of bench:video (time to first picture on the wall's MSE player, live latency
 * capture → presented frame) come from bench/video/chromium.ts, which the wall's helper writes.
 * This adapter loads it when it is there and turns its exports into the figures run.ts reports,
 * so the rest of the bench builds and runs without it.
 */
export interface ChromiumRequest {
  /** The daemon, e.g. http://127.0.0.1:PORT. */
  url: string;
  /** Camera ids: the same camera with and without the GOP cache. */
  cache: string;
  noCache: string;
  joins: number;
  latencySeconds: number;
}

export interface ChromiumResults {
  /** Time to first picture per join, ms, by camera (NaN: no picture within the join's timeout). */
  firstPicture: { cache: number[]; noCache: number[] };
  /** Capture → presented frame, ms: every sample, and what the page counted. */
  latency: {
    samples: number[];
    frames: number;
    seconds: number;
    /** Seq jumps (skips to a keyframe) and player restarts in the window, when the page counts them. */
    skips?: number;
    resets?: number;
  };
  /** Chromium's version, for the conditions. */
  browser: string;
}

export interface ChromiumHook {
  /** One line for the notes: what was measured and how. */
  describe: string;
  run(request: ChromiumRequest): Promise<ChromiumResults>;
}

/** What bench/video/chromium.ts exports, as far as this adapter uses it. */
type ChromiumModule = typeof import('./chromium.js');

/**
 * Loads bench/video/chromium.js from this build (undefined when it is not there). The joins of
 * the two cameras run side by side, each in its own page, so the 2 × 50 joins (a random 0–2 s
 * pause each) take the time of one camera's; then the live latency of the cached camera alone.
 *
 * @example
 *   const hook = await loadChromium();
 *   const r = await hook?.run({ url, cache: 'v', noCache: 'nocache', joins: 50, latencySeconds: 60 });
 */
export async function loadChromium(): Promise<ChromiumHook | undefined> {
  let mod: ChromiumModule;
  try {
    mod = (await import(new URL('./chromium.js', import.meta.url).href)) as ChromiumModule;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ERR_MODULE_NOT_FOUND') return undefined;
    throw err;
  }
  return {
    describe: `${mod.describe} The two cameras' joins ran side by side, each in its own page; the latency window ran alone.`,
    async run(request) {
      const b = await mod.launchChromium();
      try {
        const joins = (camera: string) =>
          mod.firstPictureJoins(b, { url: request.url, camera, joins: request.joins });
        const [cache, noCache] = await Promise.all([joins(request.cache), joins(request.noCache)]);
        const latency = await mod.liveLatency(b, {
          url: request.url,
          camera: request.cache,
          seconds: request.latencySeconds,
        });
        return { firstPicture: { cache, noCache }, latency, browser: b.version };
      } finally {
        await b.close();
      }
    },
  };
}
