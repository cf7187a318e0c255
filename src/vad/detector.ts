import { VadStreamError } from '../errors.js';
import { frameLength, msToFrames, msToSamples, type VadConfig } from './config.js';
import { MIN_DBFS, meanSquareToDbfs } from './dbfs.js';
import type { RmsBackend } from './energy.js';
import { type FloorParams, type FloorState, floorParams, initialFloor, updateFloor } from './noise-floor.js';

/**
 * Everything the detector remembers about one stream, as plain data: it survives
 * structuredClone, JSON and msgpack, so a worker can take it in with a chunk and
 * hand it back with the result (piscina may run the next chunk on another thread).
 * Positions are frame indices (`*Frame`) or absolute sample counts (`*Sample`)
 * since the start of the stream.
 */
export interface VadState {
  frameLen: number;
  format: 'i16' | 'f32' | null;
  /** Samples of the incomplete last frame, completed by the next chunk. */
  carry: number[];
  /** Index of the next frame; frame k covers samples [k*frameLen, (k+1)*frameLen). */
  frame: number;
  floor: FloorState;
  lastDbfs: number;
  speaking: boolean;
  /** Consecutive loud frames of a start not yet confirmed (silence state only). */
  run: number;
  runStartFrame: number;
  runPeakDbfs: number;
  /** Consecutive quiet frames (speech state only). */
  quiet: number;
  lastLoudFrame: number;
  segStartSample: number;
  segPeakDbfs: number;
  /** End of the last closed segment; pre-roll never reaches back past it. */
  lastEndSample: number;
}

/** A change of state, at the sample where the segment starts or ends (so pre-roll and hangover included). */
export interface VadTransition {
  state: 'speech' | 'silence';
  atSample: number;
  /** Level of the frame that decided the change, and the floor it was measured against. */
  dbfs: number;
  floor: number;
}

/** A closed segment [startSample, endSample) and the loudest frame in it. */
export interface VadSegment {
  startSample: number;
  endSample: number;
  peakDbfs: number;
}

export interface VadOutput {
  state: VadState;
  transitions: VadTransition[];
  segments: VadSegment[];
}

export interface VadChunkOutput extends VadOutput {
  /** Frames completed by this chunk. */
  frames: number;
}

/** @example let state = initialVadState(cfg); */
export function initialVadState(cfg: VadConfig): VadState {
  return {
    frameLen: frameLength(cfg),
    format: null,
    carry: [],
    frame: 0,
    floor: initialFloor(cfg.minFloorDbfs),
    lastDbfs: MIN_DBFS,
    speaking: false,
    run: 0,
    runStartFrame: 0,
    runPeakDbfs: MIN_DBFS,
    quiet: 0,
    lastLoudFrame: 0,
    segStartSample: 0,
    segPeakDbfs: MIN_DBFS,
    lastEndSample: 0,
  };
}

/** Per-call constants derived from the config, so the per-frame step is arithmetic. */
interface Params {
  frameLen: number;
  floor: FloorParams;
  startDb: number;
  stopDb: number;
  minSpeechFrames: number;
  minSilenceFrames: number;
  preRoll: number;
  hangover: number;
  maxSegment: number;
}

function params(cfg: VadConfig): Params {
  const frameLen = frameLength(cfg);
  const frameDurationMs = (frameLen * 1000) / cfg.sampleRate;
  return {
    frameLen,
    floor: floorParams(frameDurationMs, cfg.floorSmoothMs, cfg.floorWindowMs, cfg.minFloorDbfs),
    startDb: cfg.startDb,
    stopDb: cfg.stopDb,
    minSpeechFrames: Math.max(1, msToFrames(cfg, cfg.minSpeechMs)),
    minSilenceFrames: Math.max(1, msToFrames(cfg, cfg.minSilenceMs)),
    preRoll: msToSamples(cfg, cfg.preRollMs),
    hangover: Math.min(msToSamples(cfg, cfg.hangoverMs), msToFrames(cfg, cfg.minSilenceMs) * frameLen),
    maxSegment: Math.max(2 * frameLen, msToSamples(cfg, cfg.maxSegmentMs)),
  };
}

function cloneState(s: VadState): VadState {
  return { ...s, carry: s.carry.slice(), floor: { ...s.floor, mins: s.floor.mins.slice() } };
}

function closeSegment(s: VadState, endSample: number, out: VadOutput): void {
  // After a forced split the last loud frame can precede the new segment; then it is empty.
  const end = Math.max(endSample, s.segStartSample);
  if (end > s.segStartSample)
    out.segments.push({ startSample: s.segStartSample, endSample: end, peakDbfs: s.segPeakDbfs });
  out.transitions.push({ state: 'silence', atSample: end, dbfs: s.lastDbfs, floor: s.floor.db });
  s.speaking = false;
  s.run = 0;
  s.quiet = 0;
  s.lastEndSample = end;
}

/** Advances the state machine by one frame of the given mean square. */
function step(s: VadState, p: Params, meanSquare: number, out: VadOutput): void {
  const f = s.frame++;
  const db = meanSquareToDbfs(meanSquare);
  const floor = updateFloor(s.floor, p.floor, db);
  s.lastDbfs = db;
  const frameEnd = (f + 1) * p.frameLen;
  if (!s.speaking) {
    if (s.run === 0 ? db >= floor + p.startDb : db >= floor + p.stopDb) {
      if (s.run++ === 0) {
        s.runStartFrame = f;
        s.runPeakDbfs = db;
      } else if (db > s.runPeakDbfs) s.runPeakDbfs = db;
    } else s.run = 0;
    if (s.run >= p.minSpeechFrames) {
      s.speaking = true;
      s.quiet = 0;
      s.lastLoudFrame = f;
      s.segStartSample = Math.max(s.runStartFrame * p.frameLen - p.preRoll, s.lastEndSample);
      s.segPeakDbfs = s.runPeakDbfs;
      out.transitions.push({ state: 'speech', atSample: s.segStartSample, dbfs: db, floor });
    }
    return;
  }
  if (db > s.segPeakDbfs) s.segPeakDbfs = db;
  if (db >= floor + p.stopDb) {
    s.lastLoudFrame = f;
    s.quiet = 0;
  } else if (++s.quiet >= p.minSilenceFrames) {
    closeSegment(s, Math.min((s.lastLoudFrame + 1) * p.frameLen + p.hangover, frameEnd), out);
    return;
  }
  if (frameEnd - s.segStartSample >= p.maxSegment) {
    // Forced split: close here and go on in a new segment, without a state change.
    out.segments.push({ startSample: s.segStartSample, endSample: frameEnd, peakDbfs: s.segPeakDbfs });
    s.segStartSample = frameEnd;
    s.segPeakDbfs = MIN_DBFS;
    s.lastEndSample = frameEnd;
  }
}

// Reused across calls: a worker runs one task at a time, and 1 s at 48 kHz in
// 10 ms frames is 100 values, so this rarely grows.
let energies = new Float64Array(256);

function frameEnergies(backend: RmsBackend, samples: Int16Array | Float32Array, frameLen: number): number {
  const frames = Math.floor(samples.length / frameLen);
  if (energies.length < frames) energies = new Float64Array(frames);
  return samples instanceof Int16Array
    ? backend.frameEnergyI16(samples, frameLen, energies)
    : backend.frameEnergyF32(samples, frameLen, energies);
}

/**
 * Runs one chunk of a stream through the detector: state in, state out. The input
 * state is not modified. A frame split across chunks is completed from `carry`, so
 * the result does not depend on where the chunks are cut.
 *
 * @example
 *   let state = initialVadState(cfg);
 *   for (const chunk of chunks) {
 *     const r = processChunk(backend, cfg, state, chunk);
 *     state = r.state;
 *     for (const t of r.transitions) publish(t);
 *   }
 */
export function processChunk(
  backend: RmsBackend,
  cfg: VadConfig,
  state: VadState,
  samples: Int16Array | Float32Array,
): VadChunkOutput {
  const p = params(cfg);
  if (state.frameLen !== p.frameLen) {
    throw new VadStreamError(`state has ${state.frameLen}-sample frames, config gives ${p.frameLen}`);
  }
  const format = samples instanceof Int16Array ? 'i16' : 'f32';
  if (state.format !== null && state.format !== format) {
    throw new VadStreamError(`stream started as ${state.format}, chunk is ${format}`);
  }
  const s = cloneState(state);
  s.format = format;
  const out: VadChunkOutput = { state: s, transitions: [], segments: [], frames: 0 };
  let body = samples;
  if (s.carry.length > 0) {
    const need = p.frameLen - s.carry.length;
    if (samples.length < need) {
      for (const x of samples) s.carry.push(x);
      return out;
    }
    const first = format === 'i16' ? new Int16Array(p.frameLen) : new Float32Array(p.frameLen);
    first.set(s.carry);
    first.set(samples.subarray(0, need), s.carry.length);
    frameEnergies(backend, first, p.frameLen);
    step(s, p, energies[0]!, out);
    out.frames++;
    body = samples.subarray(need);
  }
  const n = frameEnergies(backend, body, p.frameLen);
  for (let i = 0; i < n; i++) step(s, p, energies[i]!, out);
  out.frames += n;
  s.carry = Array.from(body.subarray(n * p.frameLen));
  return out;
}

/**
 * Ends a stream (an audio job at end of input): closes an open segment at its last
 * loud frame plus hangover, or at the end of the input if that comes first. An
 * unconfirmed start and the samples of an incomplete last frame are dropped.
 */
export function finish(cfg: VadConfig, state: VadState): VadOutput {
  const s = cloneState(state);
  const out: VadOutput = { state: s, transitions: [], segments: [] };
  const p = params(cfg);
  const end = s.frame * p.frameLen + s.carry.length;
  if (s.speaking) closeSegment(s, Math.min((s.lastLoudFrame + 1) * p.frameLen + p.hangover, end), out);
  s.run = 0;
  return out;
}
