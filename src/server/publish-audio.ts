import type { CameraConfig } from '../config/schema.js';
import type { AudioIngest } from '../ingest/audio-ingest.js';
import { pcmSamples } from '../jobs/audio-input.js';
import { cameraHasAudio } from '../media/camera-args.js';
import type { PublishHandler } from './publish.js';

/** Sample rates a publisher may declare: the same range as raw PCM audio jobs. */
const MIN_RATE = 8000;
const MAX_RATE = 192_000;

/**
 * Publisher `{type:'audio', camera, rate, format:'s16le'|'f32le', data}` into the live VAD.
 * Cameras whose own ffmpeg supplies audio refuse it: two sources would interleave one stream.
 * f32le samples must be finite (BAD_PCM_VALUES, as for raw PCM jobs): one NaN or Infinity
 * would poison the detector's running energy and noise floor, silencing the camera's VAD.
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
    let samples: Int16Array | Float32Array;
    try {
      // The same conversion and checks as raw PCM audio jobs; only non-finite samples can fail here.
      samples = pcmSamples(data, { format, rate });
    } catch (err) {
      return { ok: false, code: 'BAD_PCM_VALUES', message: (err as Error).message };
    }
    audio.push(cam.id, samples, rate);
    return { ok: true };
  };
}
