import { type CameraConfig, isPushCamera } from '../config/schema.js';
import type { Hub } from '../hub/hub.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics/metrics.js';
import type { AudioIngest } from './audio-ingest.js';
import type { CameraStatus } from './camera-supervisor.js';
import { FfmpegCameraSource } from './ffmpeg-source.js';
import type { FrameIngest } from './frame-ingest.js';
import { PushCameraSource } from './push-source.js';

/**
 * Where one configured camera's frames come from. The daemon starts, stops and reports every
 * camera through this, without asking which kind it is. Two kinds, told apart by the config's
 * `source`: an ffmpeg source (`test`, a file path or a URL; ffmpeg-source.ts) that the daemon
 * runs and supervises, and a push source (push-source.ts) whose publisher sends frames and
 * audio on `/publish`. A third kind (a Redis bus feed, say) is one more implementation.
 */
export interface CameraSource {
  readonly camera: CameraConfig;
  /** Begins delivering frames into the pipeline; a second call does nothing. */
  start(): void;
  /** Stops for good; bounded, so a shutdown never waits on a camera. */
  stop(): Promise<void>;
  /** Its row in `/api/v1/status`, or undefined for a kind with no process to report (push). */
  status(): CameraStatus | undefined;
}

/** What a source feeds: frames to the ingest, audio to the VAD, up/down to the `system` topic. */
export interface CameraSourceDeps {
  ingest: FrameIngest;
  audio: AudioIngest;
  hub: Hub;
  ffmpegPath: string;
  /** TTF file for the test pattern's clock; undefined draws no clock. */
  clockFont: string | undefined;
  log: Logger;
  metrics: Metrics;
}

/**
 * @example
 *   const sources = config.cameras.map((cam) => createCameraSource(cam, deps));
 *   for (const s of sources) s.start();
 */
export function createCameraSource(camera: CameraConfig, deps: CameraSourceDeps): CameraSource {
  return isPushCamera(camera) ? new PushCameraSource(camera) : new FfmpegCameraSource(camera, deps);
}
