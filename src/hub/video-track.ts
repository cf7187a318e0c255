import type { InitSegment, MediaFragment } from '../media/fmp4.js';
import { encode } from '../wire/records.js';

/**
 * The init segment of a camera's live H.264 as published: what a subscriber must append to its
 * SourceBuffer before any fragment. A new one (a restarted ffmpeg) replaces it and the GOP.
 */
export interface VideoInit {
  kind: 'init';
  topic: string;
  /** The seq of the next fragment: a client can tell which fragments belong to this init. */
  seq: number;
  ts: number;
  codec: string;
  width: number;
  height: number;
  /** ftyp+moov. */
  data: Uint8Array;
  /** The WS record, encoded once. */
  record: Uint8Array;
  /** Other transports' framings (SSE), made on first use and shared by every viewer. */
  encodings: Map<string, Uint8Array>;
}

/** One fragment (moof+mdat: one frame) of a camera's live H.264 as published. */
export interface VideoFragment {
  kind: 'fragment';
  topic: string;
  /** Per topic, from 1, across ffmpeg restarts: a client sees a skip as a gap. */
  seq: number;
  /** When the daemon received it from ffmpeg, ms since epoch: its capture time as far as the daemon knows. */
  ts: number;
  /** Media time of its first sample, in seconds (tfdt / timescale): maps a presented frame to `ts`. */
  pts: number;
  keyframe: boolean;
  data: Uint8Array;
  record: Uint8Array;
  encodings: Map<string, Uint8Array>;
}

export type VideoItem = VideoInit | VideoFragment;

/**
 * The GOP cache's bound per camera: 8 MiB holds a 2 s GOP up to 32 Mbit/s. A GOP past it is
 * not cached (its new viewers wait for the next keyframe) rather than held without bound.
 */
export const MAX_GOP_BYTES = 8 * 1024 * 1024;

export interface VideoTrackOptions {
  /** Keep the fragments since the last keyframe for new viewers (the GOP cache). */
  gopCache: boolean;
  /** A GOP over this many bytes is not cached: new viewers then wait for the next keyframe. */
  maxGopBytes: number;
}

/**
 * One camera's live video: the current init segment and the fragments since the last keyframe.
 * A new viewer is sent the init and that GOP at once, so it can show a picture without waiting
 * up to a GOP for the next keyframe (go2rtc and MediaMTX make it wait). Memory: at most one
 * GOP per camera, bounded by `maxGopBytes` (a 2 s GOP at 1 Mbit/s is about 250 KB).
 *
 * Records are encoded here, once per fragment, and the same bytes go to every WS viewer.
 */
export class VideoTrack {
  private current: VideoInit | undefined;
  private gop: VideoFragment[] = [];
  private gopBytes = 0;
  /** False from an over-budget GOP until the next keyframe: nothing of that GOP is cached. */
  private caching = false;
  private seq = 0;
  /** The init's video timescale: ticks per second of the fragments' decode times. */
  private timescale = 0;

  constructor(
    readonly topic: string,
    private readonly opts: VideoTrackOptions,
  ) {}

  get init(): VideoInit | undefined {
    return this.current;
  }

  /** The fragments a new viewer gets after the init: the GOP so far, keyframe first (empty without one). */
  cachedGop(): readonly VideoFragment[] {
    return this.gop;
  }

  /** Bytes held by the GOP cache (the video_gop_cache_bytes gauge). */
  get cachedBytes(): number {
    return this.gopBytes;
  }

  setInit(segment: InitSegment, ts: number): VideoInit {
    const { codec, width, height, data } = segment;
    const topic = this.topic;
    const seq = this.seq + 1;
    this.timescale = segment.timescale;
    this.current = {
      kind: 'init',
      topic,
      seq,
      ts,
      codec,
      width,
      height,
      data,
      record: encode({ type: 'init', topic, seq, ts, codec, width, height, data }),
      encodings: new Map(),
    };
    this.dropGop(false);
    return this.current;
  }

  /** Undefined for a fragment before any init (nothing could play it). */
  addFragment(piece: MediaFragment, ts: number): VideoFragment | undefined {
    if (!this.current) return undefined;
    const seq = ++this.seq;
    const { keyframe, data } = piece;
    const pts = this.timescale > 0 ? piece.decodeTime / this.timescale : 0;
    const topic = this.topic;
    const fragment: VideoFragment = {
      kind: 'fragment',
      topic,
      seq,
      ts,
      pts,
      keyframe,
      data,
      record: encode({ type: 'fragment', topic, seq, ts, pts, keyframe, data }),
      encodings: new Map(),
    };
    if (keyframe) this.dropGop(this.opts.gopCache);
    if (this.caching) {
      this.gop.push(fragment);
      this.gopBytes += data.byteLength;
      if (this.gopBytes > this.opts.maxGopBytes) this.dropGop(false);
    }
    return fragment;
  }

  private dropGop(startCaching: boolean): void {
    this.gop = [];
    this.gopBytes = 0;
    this.caching = startCaching;
  }
}

/** The WS record of a fragment sent from the GOP cache: `cached: true`, encoded once per fragment. */
export function cachedFragmentRecord(f: VideoFragment): Uint8Array {
  let bytes = f.encodings.get('ws-cached');
  if (!bytes) {
    const { topic, seq, ts, pts, keyframe, data } = f;
    bytes = encode({ type: 'fragment', topic, seq, ts, pts, keyframe, data, cached: true });
    f.encodings.set('ws-cached', bytes);
  }
  return bytes;
}
