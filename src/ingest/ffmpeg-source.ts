import type { FfmpegCameraConfig } from '../config/schema.js';
import type { CameraSource, CameraSourceDeps } from './camera-source.js';
import { type CameraStatus, CameraSupervisor } from './camera-supervisor.js';

/**
 * A camera the daemon runs: one supervised ffmpeg child (camera-supervisor.ts) whose JPEG
 * frames go to the frame ingest and whose PCM, when the camera has audio, goes to the live VAD
 * at the camera's `audioRate`. When the child stops delivering, its VAD stream is reset (the
 * next run's samples start again at 0) and `camera_down` goes out on `system`; `camera_up`
 * when frames flow again.
 */
export class FfmpegCameraSource implements CameraSource {
  private readonly supervisor: CameraSupervisor;

  constructor(
    readonly camera: FfmpegCameraConfig,
    deps: CameraSourceDeps,
  ) {
    const { ingest, audio, hub } = deps;
    this.supervisor = new CameraSupervisor(camera, {
      ffmpegPath: deps.ffmpegPath,
      clockFont: deps.clockFont,
      log: deps.log,
      metrics: deps.metrics,
      onFrame: (jpeg, ts) => ingest.submit(camera, jpeg, ts),
      onAudio: (samples) => audio.push(camera.id, samples, camera.audioRate),
      onVideo: (piece, receivedAt) => hub.publishVideo(camera.id, piece, receivedAt),
      onUpChange: (up, reason) => {
        if (!up) {
          audio.reset(camera.id);
          hub.stopVideo(camera.id);
        }
        hub.publishEvent('system', {
          type: 'system',
          kind: up ? 'camera_up' : 'camera_down',
          camera: camera.id,
          reason,
        });
      },
    });
  }

  start(): void {
    this.supervisor.start();
  }

  stop(): Promise<void> {
    return this.supervisor.stop();
  }

  status(): CameraStatus {
    return this.supervisor.status();
  }
}
