import type { CameraConfig } from '../config/schema.js';
import type { AudioIngest } from '../ingest/audio-ingest.js';
import { cameraHasAudio } from '../media/camera-args.js';
import type { PublishHandler } from './publish.js';

/** Sample rates a publisher may declare: the same range as raw PCM audio jobs. */
const MIN_RATE = 8000;
const MAX_RATE = 192_000;

/**
 * Publisher `{type:'audio', camera, rate, format:'s16le'|'f32le', data}` into the live VAD.
 * Cameras whose own ffmpeg supplies audio refuse it: two sources would interleave one stream.
 * f32le samples must be finite: one NaN or Infinity would poison the detector's running
 * energy and noise floor, silencing the camera's VAD until it restarts.
 */
export function publishAudio(audio: AudioIngest): PublishHandler {
  return (cam: CameraConfig, rec) => {
    if (cameraHasAudio(cam)) {
      return {
        ok: false,
        code: 'NOT_PUSH_CAMERA',
        message: `camera "${cam.id}" takes its audio from its source`,
      };
    }
    const { rate, format, data } = rec;
    if (typeof rate !== 'number' || !Number.isInteger(rate) || rate < MIN_RATE || rate > MAX_RATE) {
      return {
        ok: false,
        code: 'BAD_MESSAGE',
        message: `"rate" must be an integer from ${MIN_RATE} to ${MAX_RATE}`,
      };
    }
    if (format !== 's16le' && format !== 'f32le') {
      return { ok: false, code: 'BAD_MESSAGE', message: '"format" must be s16le or f32le' };
    }
    const width = format === 's16le' ? 2 : 4;
    if (!(data instanceof Uint8Array) || data.byteLength === 0 || data.byteLength % width !== 0) {
      return {
        ok: false,
        code: 'BAD_MESSAGE',
        message: `"data" must be ${format} bytes, a non-empty multiple of ${width}`,
      };
    }
    // A fresh, aligned copy: the decoded bytes may sit at any offset of the message.
    const samples =
      format === 's16le' ? new Int16Array(data.byteLength / 2) : new Float32Array(data.byteLength / 4);
    new Uint8Array(samples.buffer).set(data);
    if (samples instanceof Float32Array && !samples.every(Number.isFinite)) {
      return { ok: false, code: 'BAD_PCM_VALUES', message: 'f32le samples must be finite numbers' };
    }
    audio.push(cam.id, samples, rate);
    return { ok: true };
  };
}
