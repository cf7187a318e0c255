import { AudioInputError, DecoderError } from '../errors.js';
import { AUDIO_DEMUXERS, type AudioContainer } from '../media/audio-containers.js';
import { runFfmpeg } from '../media/ffmpeg-run.js';
import { fencedInputArgs } from '../media/input-fence.js';

export { AUDIO_CONTAINER_NAMES, type AudioContainer, sniffContainer } from '../media/audio-containers.js';

/** Raw PCM parameters from `?format=&rate=`. */
export interface PcmFormat {
  format: 's16le' | 'f32le';
  rate: number;
}

/** Validates raw PCM bytes and views them as samples (copying into an aligned buffer). */
export function pcmSamples(body: Uint8Array, pcm: PcmFormat): Int16Array | Float32Array {
  const width = pcm.format === 's16le' ? 2 : 4;
  if (body.length % width !== 0) {
    throw new AudioInputError(
      'BAD_PCM_LENGTH',
      `${pcm.format} needs a multiple of ${width} bytes; got ${body.length} (a truncated upload?)`,
      422,
    );
  }
  const samples =
    pcm.format === 's16le' ? new Int16Array(body.length / 2) : new Float32Array(body.length / 4);
  new Uint8Array(samples.buffer).set(body);
  if (samples instanceof Float32Array && samples.some((x) => !Number.isFinite(x))) {
    throw new AudioInputError('BAD_PCM_VALUES', 'f32le samples must be finite numbers', 422);
  }
  return samples;
}

/**
 * ffmpeg's arguments for one upload, fenced by fencedInputArgs (src/media/input-fence.ts, the
 * same fence as video jobs): the demuxer forced from the sniffed container, no demuxer but the
 * audio containers at any depth, only the pipe protocol. Without them a body that merely
 * starts like mp3 is probed as DASH and ffmpeg fetches the URLs or local files it names. `-t`
 * stops ffmpeg one second past the duration limit, so running over it is seen, not silently cut.
 *
 * @example
 *   audioDecodeArgs('wav', 16000, 3600) // [..., '-f', 'wav', '-i', 'pipe:0', ..., 'pipe:1']
 */
export function audioDecodeArgs(demuxer: string, rate: number, maxSeconds: number): string[] {
  // biome-ignore format: one option and its value per line
  return [
    '-hide_banner', '-nostdin',
    '-loglevel', 'error',
    ...fencedInputArgs({ demuxer, accepted: AUDIO_DEMUXERS, from: 'stdin' }),
    '-vn', '-sn', '-dn',
    '-ac', '1',
    '-ar', String(rate),
    '-t', String(maxSeconds + 1),
    '-f', 's16le',
    'pipe:1',
  ];
}

/**
 * Decode amplification cap for every container, including those whose rate is not read from
 * the header (Ogg, MP4, WebM, Matroska). Real audio stays far below it: 6 kbit/s Opus at 16 kHz
 * is about 21 samples per byte, and FLAC's digital silence a few hundred; a header declaring
 * 1 Hz resampled to 16 kHz is about 8,000.
 */
export const MAX_SAMPLES_PER_INPUT_BYTE = 1000;

export interface DecodeOptions {
  ffmpegPath: string;
  body: Buffer;
  container: AudioContainer;
  /** Output rate; samples are mono s16le. */
  rate: number;
  /** Decoded audio longer than this stops ffmpeg and fails with AUDIO_TOO_LONG. */
  maxSeconds: number;
  onSamples: (s: Int16Array) => void;
  /** The fraction of input bytes handed to ffmpeg so far. */
  onProgress: (fraction: number) => void;
}

export interface DecodeHandle {
  /** Resolves once ffmpeg produced its first audio; rejects like `done` when it never does. */
  started: Promise<void>;
  /** Resolves when all samples were delivered; rejects with an AudioInputError. */
  done: Promise<void>;
  /** Kills ffmpeg's process group; `started` (if still pending) and `done` reject with `reason`. */
  stop(reason: Error): void;
}

/** Decodes an upload to mono s16le at `rate`, streaming samples to `onSamples` as they come. */
export function decodeAudio(o: DecodeOptions): DecodeHandle {
  const name = o.container.name;
  // The job's own deadline (AudioJobs) stops the run; the runner maps a failed exit to the
  // audio codes clients already match on.
  const run = runFfmpeg({
    ffmpegPath: o.ffmpegPath,
    args: audioDecodeArgs(o.container.demuxer, o.rate, o.maxSeconds),
    failure: (kind, detail) =>
      kind === 'spawn'
        ? new DecoderError('INTERNAL', 'the audio decoder could not be started', 500, detail)
        : new DecoderError(
            'DECODE_FAILED',
            `the body starts like ${name} but does not decode as ${name}`,
            422,
            detail,
          ),
  });
  const ff = run.child;
  const maxSamples = o.maxSeconds * o.rate;
  let produced = 0;
  let carry: Buffer | undefined;
  let resolveStarted!: () => void;
  let rejectStarted!: (e: Error) => void;
  const started = new Promise<void>((res, rej) => {
    resolveStarted = res;
    rejectStarted = rej;
  });
  const stop = (reason: Error) => run.stop(reason);

  ff.process.stdout.on('data', (chunk: Buffer) => {
    if (run.stopped) return;
    const bytes = carry ? Buffer.concat([carry, chunk]) : chunk;
    const even = bytes.length - (bytes.length % 2);
    carry = even < bytes.length ? bytes.subarray(even) : undefined;
    if (even === 0) return;
    produced += even / 2;
    if (produced > o.body.length * MAX_SAMPLES_PER_INPUT_BYTE) {
      const limit = `decoded audio is over ${MAX_SAMPLES_PER_INPUT_BYTE} samples per uploaded byte (a header declaring a tiny sample rate?)`;
      return stop(new AudioInputError('SAMPLE_RATE_TOO_LOW', limit, 422));
    }
    if (produced > maxSamples) {
      const limit = `decoded audio runs past ${o.maxSeconds} s (jobs.maxAudioSeconds)`;
      return stop(new AudioInputError('AUDIO_TOO_LONG', limit, 422));
    }
    const samples = new Int16Array(even / 2);
    new Uint8Array(samples.buffer).set(bytes.subarray(0, even));
    resolveStarted();
    o.onSamples(samples);
  });

  // Feed the body in slices so progress can be reported as ffmpeg consumes it.
  const slice = 256 * 1024;
  let offset = 0;
  const feed = () => {
    while (offset < o.body.length && !run.stopped) {
      const end = Math.min(o.body.length, offset + slice);
      const more = ff.process.stdin.write(o.body.subarray(offset, end));
      offset = end;
      o.onProgress(offset / o.body.length);
      if (!more) return void ff.process.stdin.once('drain', feed);
    }
    ff.process.stdin.end();
  };
  feed();

  const done = run.done.then(() => {
    if (produced === 0) throw new AudioInputError('NO_AUDIO', 'the input holds no audio samples', 422);
  });
  done.catch(rejectStarted);
  // Whoever holds the handle may stop listening (a cancelled upload); a rejection is never unobserved.
  started.catch(() => {});
  return { started, done, stop };
}
