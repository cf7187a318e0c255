import { spawn } from 'node:child_process';
import { FramehubError } from '../errors.js';

/** Raw PCM parameters from `?format=&rate=`. */
export interface PcmFormat {
  format: 's16le' | 'f32le';
  rate: number;
}

/** Bad audio input, with the HTTP status it maps to. */
export class AudioInputError extends FramehubError {}

/** Containers and codecs recognised by their first bytes; anything else is refused as 415 before ffmpeg runs. */
const MAGIC: [string, (b: Buffer) => boolean][] = [
  ['wav', (b) => b.toString('latin1', 0, 4) === 'RIFF' && b.toString('latin1', 8, 12) === 'WAVE'],
  ['aiff', (b) => b.toString('latin1', 0, 4) === 'FORM' && /^AIF[FC]$/.test(b.toString('latin1', 8, 12))],
  ['ogg', (b) => b.toString('latin1', 0, 4) === 'OggS'],
  ['flac', (b) => b.toString('latin1', 0, 4) === 'fLaC'],
  ['mp3', (b) => b.toString('latin1', 0, 3) === 'ID3' || (b[0] === 0xff && ((b[1] ?? 0) & 0xe0) === 0xe0)],
  ['mp4', (b) => b.toString('latin1', 4, 8) === 'ftyp'],
  ['webm', (b) => b.readUInt32BE(0) === 0x1a45dfa3],
  ['caf', (b) => b.toString('latin1', 0, 4) === 'caff'],
  ['au', (b) => b.toString('latin1', 0, 4) === '.snd'],
];

export function sniffContainer(body: Buffer): string | undefined {
  if (body.length < 12) return undefined;
  return MAGIC.find(([, test]) => test(body))?.[0];
}

/** Validates raw PCM bytes and views them as samples (copying into an aligned buffer). */
export function pcmSamples(body: Buffer, pcm: PcmFormat): Int16Array | Float32Array {
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

export interface DecodeHandle {
  /** Resolves once ffmpeg produced its first audio, or rejects with DECODE_FAILED when it could not. */
  started: Promise<void>;
  /** Resolves when decoding finished (all samples delivered). */
  done: Promise<void>;
  kill(): void;
}

/**
 * Decodes any file ffmpeg understands to mono s16le at `rate`, streaming samples to `onSamples`
 * as they come. `onProgress` gets the fraction of input bytes ffmpeg has consumed.
 */
export function decodeAudio(
  ffmpegPath: string,
  body: Buffer,
  rate: number,
  onSamples: (s: Int16Array) => void,
  onProgress: (fraction: number) => void,
): DecodeHandle {
  const child = spawn(
    ffmpegPath,
    [
      '-hide_banner',
      '-nostdin',
      '-loglevel',
      'error',
      '-i',
      'pipe:0',
      '-vn',
      '-ac',
      '1',
      '-ar',
      String(rate),
      '-f',
      's16le',
      'pipe:1',
    ],
    { stdio: ['pipe', 'pipe', 'pipe'] },
  );
  let stderr = '';
  let carry: Buffer | undefined;
  let produced = false;
  let resolveStarted!: () => void;
  let rejectStarted!: (e: Error) => void;
  const started = new Promise<void>((res, rej) => {
    resolveStarted = res;
    rejectStarted = rej;
  });
  child.stderr.setEncoding('utf8').on('data', (t: string) => {
    stderr = (stderr + t).slice(-2000);
  });
  child.stdout.on('data', (chunk: Buffer) => {
    const bytes = carry ? Buffer.concat([carry, chunk]) : chunk;
    const even = bytes.length - (bytes.length % 2);
    carry = even < bytes.length ? bytes.subarray(even) : undefined;
    if (even === 0) return;
    const samples = new Int16Array(even / 2);
    new Uint8Array(samples.buffer).set(bytes.subarray(0, even));
    if (!produced) {
      produced = true;
      resolveStarted();
    }
    onSamples(samples);
  });
  // Feed the body in slices so progress can be reported as ffmpeg consumes it.
  const slice = 256 * 1024;
  let offset = 0;
  const feed = () => {
    while (offset < body.length) {
      const end = Math.min(body.length, offset + slice);
      const more = child.stdin.write(body.subarray(offset, end));
      offset = end;
      onProgress(offset / body.length);
      if (!more) return void child.stdin.once('drain', feed);
    }
    child.stdin.end();
  };
  child.stdin.on('error', () => {}); // EPIPE when ffmpeg gives up early; the exit code tells why.
  feed();
  const done = new Promise<void>((resolve, reject) => {
    child.on('close', (code, signal) => {
      const failure = new AudioInputError(
        'DECODE_FAILED',
        `ffmpeg could not decode the input (${signal ?? `exit ${code}`}): ${stderr.trim().split('\n').slice(-3).join(' | ')}`,
        422,
      );
      if (code === 0 && produced) resolve();
      else if (code === 0) {
        const empty = new AudioInputError('NO_AUDIO', 'the input holds no audio samples', 422);
        rejectStarted(empty);
        reject(empty);
      } else {
        rejectStarted(failure);
        reject(failure);
      }
    });
  });
  done.catch(() => {});
  return { started, done, kill: () => child.kill('SIGKILL') };
}
