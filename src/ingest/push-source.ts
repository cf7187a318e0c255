import type { PushCameraConfig } from '../config/schema.js';
import type { CameraSource } from './camera-source.js';

/**
 * A camera fed by a publisher: `/publish` (src/server/publish.ts) hands its frames to the frame
 * ingest and its `audio` records to the live VAD, each checked there. The daemon runs nothing
 * for it, so starting and stopping are no-ops, and it has no process row in `/api/v1/status`
 * (the status API has only ever listed cameras the daemon runs).
 */
export class PushCameraSource implements CameraSource {
  constructor(readonly camera: PushCameraConfig) {}

  start(): void {}

  async stop(): Promise<void> {}

  status(): undefined {
    return undefined;
  }
}
