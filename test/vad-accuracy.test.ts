// Frame-level accuracy on labelled speech in noise, generated at test time with
// espeak-ng and sox (apt: espeak-ng sox). Writes bench/results/vad-accuracy.json.
import { beforeAll, describe, expect, it } from 'vitest';
import { writeResult } from '../bench/lib/results.js';
import { loadRmsBackend } from '../src/vad/backend.js';
import { DEFAULT_VAD_CONFIG, frameLength, resolveVadConfig } from '../src/vad/config.js';
import {
  background,
  missingAudioTools,
  mix,
  NOISES,
  type Noise,
  RATE,
  type SpeechTrack,
  speechTrack,
} from './fixtures/vad-audio.js';
import { runStream } from './fixtures/vad-run.js';
import { rates, type Score, score } from './fixtures/vad-score.js';

const SNRS = [20, 10, 5] as const;
const VOICES = ['en-us', 'en-gb+f3'];
const TARGET_F1: Record<number, number> = { 20: 0.95, 10: 0.9 };
const missing = missingAudioTools();

function pooled(scores: Score[]): Score {
  const sum = (key: 'tp' | 'fp' | 'fn' | 'boundaries') => scores.reduce((a, s) => a + s[key], 0);
  const boundaries = sum('boundaries');
  return {
    ...rates(sum('tp'), sum('fp'), sum('fn')),
    boundaryMs: scores.reduce((a, s) => a + s.boundaryMs * s.boundaries, 0) / boundaries,
    boundaries,
    missed: scores.reduce((a, s) => a + s.missed, 0),
  };
}

function accuracySuite(): void {
  const backend = loadRmsBackend();
  const cfg = resolveVadConfig({ sampleRate: RATE });
  const results = new Map<number, { noise: Noise; voice: string; score: Score }[]>();

  beforeAll(() => {
    const tracks: [string, SpeechTrack][] = VOICES.map((v) => [v, speechTrack(v)]);
    const longest = Math.max(...tracks.map(([, t]) => t.clean.length));
    for (const noise of NOISES) {
      const bg = background(noise, longest / RATE + 1);
      for (const snr of SNRS) {
        for (const [voice, track] of tracks) {
          const audio = mix(track, bg, snr);
          const r = runStream(backend, cfg, audio, RATE); // 1 s chunks, as from a camera
          const s = score(r.segments, track.utterances, audio.length, frameLength(cfg), RATE);
          results.set(snr, [...(results.get(snr) ?? []), { noise, voice, score: s }]);
        }
      }
    }
    const rows = SNRS.map((snr) => ({ snr, s: pooled(results.get(snr)!.map((r) => r.score)) }));
    const fmt = (x: number) => x.toFixed(3);
    // `npm run bench:vad-accuracy` records the figures; a plain `npm test` leaves the tree clean.
    if (process.env.FRAMEHUB_WRITE_RESULTS === '1')
      writeResult({
        bench: 'vad-accuracy',
        title: 'VAD accuracy on labelled speech in noise',
        conditions: {
          speech: `espeak-ng ${VOICES.join(' and ')}, 10 sentences each, gaps 1.0-2.6 s`,
          backgrounds: 'sox -R white, pink, brown noise and a 50 Hz sine hum',
          labels:
            "each utterance's audible extent: first to last 20 ms frame within 40 dB of its loudest frame",
          snr: 'clean-speech power over the labelled frames / background power',
          detector: `defaults (startDb ${DEFAULT_VAD_CONFIG.startDb}, stopDb ${DEFAULT_VAD_CONFIG.stopDb}, preRoll ${DEFAULT_VAD_CONFIG.preRollMs} ms, hangover ${DEFAULT_VAD_CONFIG.hangoverMs} ms), 16 kHz, 20 ms frames, 1 s int16 chunks`,
          backend: backend.detail,
        },
        targets: rows
          .filter((r) => TARGET_F1[r.snr] !== undefined)
          .map((r) => ({
            name: `F1 at ${r.snr} dB SNR`,
            target: `>= ${TARGET_F1[r.snr]}`,
            measured: fmt(r.s.f1),
            met: r.s.f1 >= TARGET_F1[r.snr]!,
          })),
        tables: [
          {
            caption: 'Frame level, pooled over backgrounds and voices',
            columns: ['SNR dB', 'precision', 'recall', 'F1', 'mean boundary error ms', 'utterances missed'],
            rows: rows.map(({ snr, s }) => [
              snr,
              fmt(s.precision),
              fmt(s.recall),
              fmt(s.f1),
              s.boundaryMs.toFixed(0),
              `${s.missed}/${s.boundaries / 2 + s.missed}`,
            ]),
          },
          {
            caption: 'F1 by background (pooled over voices)',
            columns: ['SNR dB', ...NOISES],
            rows: SNRS.map((snr) => [
              snr,
              ...NOISES.map((n) =>
                fmt(
                  pooled(
                    results
                      .get(snr)!
                      .filter((r) => r.noise === n)
                      .map((r) => r.score),
                  ).f1,
                ),
              ),
            ]),
          },
        ],
        raw: Object.fromEntries(SNRS.map((snr) => [snr, results.get(snr)])),
      });
  }, 120_000);

  for (const snr of SNRS) {
    const target = TARGET_F1[snr];
    it(`at ${snr} dB SNR: F1 ${target ? `>= ${target}` : 'reported'}`, () => {
      const s = pooled(results.get(snr)!.map((r) => r.score));
      console.log(
        `SNR ${snr} dB: precision ${s.precision.toFixed(3)} recall ${s.recall.toFixed(3)} F1 ${s.f1.toFixed(3)} boundary ${s.boundaryMs.toFixed(0)} ms missed ${s.missed}`,
      );
      if (target) expect(s.f1).toBeGreaterThanOrEqual(target);
    });
  }
}

describe('VAD accuracy on speech in noise', () => {
  if (missing.length > 0) {
    it.skip(`skipped: ${missing.join(', ')} not installed (apt-get install espeak-ng sox)`, () => {});
  } else accuracySuite();
});
