import type { Hub } from '../hub/hub.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics/metrics.js';
import type { RunVad, VadResultRecord } from '../pool/tasks.js';
import { resolveVadConfig, type VadConfig } from '../vad/config.js';
import { type VadRestart, VadStream } from '../vad/stream.js';

type VadTuning = Partial<Omit<VadConfig, 'sampleRate'>>;

interface CameraAudio {
  id: string;
  stream: VadStream;
  rate: number;
  format: 'i16' | 'f32';
  /** Wall-clock ms of sample 0 of the current stream; unset after a restart until the next audio. */
  anchorMs: number | undefined;
  /** The last state published on `cam/<id>/vad`. */
  speaking: boolean;
}

/** Live audio buffered for the pool beyond this many seconds is an overrun. */
const MAX_PENDING_SECONDS = 5;

/**
 * Live camera audio (from the camera's ffmpeg or a publisher) through the VAD, and its
 * results onto `cam/<id>/vad`: `vad` records on each speech/silence change, `segment`
 * records when a segment closes. Sample positions become wall-clock ms by anchoring sample 0
 * at the arrival time of the first chunk, less that chunk's duration.
 *
 * When the VAD stream restarts (an overrun, or a chunk that failed in the pool) its positions
 * start again at 0 with the next audio, so the anchor is taken again from that audio's arrival:
 * the audio dropped in between is simply missing from the timeline, never shifts it.
 */
export class AudioIngest {
  private readonly cameras = new Map<string, CameraAudio>();
  private streamIds = 0;

  constructor(
    private readonly hub: Hub,
    private readonly metrics: Metrics,
    private readonly run: RunVad,
    private readonly tuning: VadTuning,
    private readonly log?: Logger,
  ) {}

  push(camera: string, samples: Int16Array | Float32Array, rate: number, now = Date.now()): void {
    const format = samples instanceof Int16Array ? 'i16' : 'f32';
    let audio = this.cameras.get(camera);
    if (!audio || audio.rate !== rate || audio.format !== format) {
      // A new rate or format is a new stream; the old one's open speech ends with it.
      if (audio) this.endSpeech(camera, audio);
      audio = this.open(camera, rate, format);
    }
    audio.anchorMs ??= now - (samples.length / rate) * 1000;
    audio.stream.push(samples);
  }

  /** Whether the camera's VAD says speech now: the state last published on `cam/<id>/vad`. */
  speaking(camera: string): boolean {
    return this.cameras.get(camera)?.speaking ?? false;
  }

  /** Forgets a camera's stream (its source restarted): the next audio starts a fresh one. */
  reset(camera: string): void {
    const audio = this.cameras.get(camera);
    if (!audio) return;
    this.cameras.delete(camera);
    this.endSpeech(camera, audio);
  }

  /**
   * Routes a vad_result ring record (stream id `cam/<camera>#<n>`) to its camera. Records of
   * a stream that was since replaced (source restart, format change) are dropped.
   */
  deliver(record: VadResultRecord): void {
    const camera = /^cam\/([^#]+)#/.exec(record.stream)?.[1];
    const audio = camera ? this.cameras.get(camera) : undefined;
    if (!camera || !audio || audio.id !== record.stream) return;
    audio.stream.deliver(record, (r) => this.publish(camera, audio, r));
  }

  private open(camera: string, rate: number, format: 'i16' | 'f32'): CameraAudio {
    const id = `cam/${camera}#${++this.streamIds}`;
    const audio: CameraAudio = {
      id,
      rate,
      format,
      anchorMs: undefined,
      speaking: false,
      stream: new VadStream({
        stream: id,
        config: resolveVadConfig({ ...this.tuning, sampleRate: rate }),
        format,
        run: this.run,
        maxPendingSamples: rate * MAX_PENDING_SECONDS,
        onChunkFailure: 'restart',
        onRestart: (restart) => this.restarted(camera, audio, restart),
      }),
    };
    this.cameras.set(camera, audio);
    this.metrics.vadSpeechActive.labels(camera).set(0);
    return audio;
  }

  private restarted(camera: string, audio: CameraAudio, restart: VadRestart): void {
    audio.anchorMs = undefined;
    // Any open segment of the old stream is abandoned with it.
    this.endSpeech(camera, audio);
    if (restart.reason === 'overrun') {
      this.metrics.vadOverruns.labels(camera).inc(restart.droppedSamples);
      return;
    }
    this.metrics.vadChunkFailures.labels(camera).inc();
    this.log?.warn(
      {
        camera,
        code: restart.error.code,
        err: restart.error.message,
        droppedSamples: restart.droppedSamples,
      },
      'vad chunk failed; the camera audio stream restarts',
    );
  }

  /**
   * The stream that saw speech start is gone (restart, or the source went away), so it will
   * never report the end: publish it, or indicators stay on "speech" until the next change.
   * Without a measured frame, dbfs and floor are null; `reason` says why.
   */
  private endSpeech(camera: string, audio: CameraAudio): void {
    this.metrics.vadSpeechActive.labels(camera).set(0);
    if (!audio.speaking) return;
    audio.speaking = false;
    this.hub.publishEvent(`cam/${camera}/vad`, {
      type: 'vad',
      state: 'silence',
      ts: Date.now(),
      dbfs: null,
      floor: null,
      reason: 'restart',
    });
  }

  private publish(camera: string, audio: CameraAudio, r: VadResultRecord): void {
    const topic = `cam/${camera}/vad`;
    const at = (sample: number) => Math.round((audio.anchorMs ?? Date.now()) + (sample / audio.rate) * 1000);
    this.metrics.vadFrames.labels(r.backend).inc(r.frames);
    for (const t of r.transitions) {
      audio.speaking = t.state === 'speech';
      this.metrics.vadSpeechActive.labels(camera).set(audio.speaking ? 1 : 0);
      this.hub.publishEvent(topic, {
        type: 'vad',
        state: t.state,
        ts: at(t.atSample),
        dbfs: t.dbfs,
        floor: t.floor,
      });
    }
    for (const s of r.segments) {
      this.metrics.vadSegments.labels(camera).inc();
      this.hub.publishEvent(topic, {
        type: 'segment',
        start: at(s.startSample),
        end: at(s.endSample),
        peakDbfs: s.peakDbfs,
      });
    }
  }
}
