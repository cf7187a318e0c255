import { type InitSegment, type MediaFragment, rebaseDecodeTime } from '../media/fmp4.js';
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
  /** Made by another node's track, taken from the cluster bus: not published back to it. */
  remote?: boolean;
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
  /** Made by another node's track, taken from the cluster bus: not published back to it. */
  remote?: boolean;
}

export type VideoItem = VideoInit | VideoFragment;

/**
 * The GOP cache's bound per camera, in fragment bytes: half a video viewer's soft limit, so
 * the burst a new viewer is sent never makes it slow by itself (1 MiB by default: a 2 s GOP up
 * to 4 Mbit/s). A GOP past it is not cached (its new viewers wait for the next keyframe)
 * rather than held without bound. In memory a cached fragment is held about 4 to 6 times
 * (its bytes, its WS record, and the cached and SSE forms made on first use).
 */
export const maxGopBytes = (videoSoftBytes: number) => Math.floor(videoSoftBytes / 2);

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
  /** Media time (s) where the last fragment ended: a restarted ffmpeg's timeline continues from here. */
  private endPts = 0;
  /** Ticks added to this run's decode times; undefined until the run's first fragment sets it. */
  private shift: number | undefined;
  /** Remote items: an init taken mid-stream, so fragments wait for the next keyframe. */
  private awaitingKeyframe = false;

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

  setInit(segment: InitSegment, ts: number): VideoInit {
    const { codec, width, height, data } = segment;
    const topic = this.topic;
    const seq = this.seq + 1;
    this.timescale = segment.timescale;
    this.shift = undefined;
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
    this.continueTimeline(piece);
    const seq = ++this.seq;
    const { keyframe, data } = piece;
    const pts = this.timescale > 0 ? piece.decodeTime / this.timescale : 0;
    if (this.timescale > 0) this.endPts = pts + piece.duration / this.timescale;
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

  /**
   * An item another node's track made (the cluster bus), kept with its seq as if made here: the
   * init replaces ours; fragments go into the GOP cache. Returns the item to publish, or
   * undefined for one not to publish: a duplicate or older one, a fragment before any init, or
   * one before the first keyframe after an init (a viewer must start at a keyframe).
   */
  acceptRemote(item: VideoItem): VideoItem | undefined {
    if (item.kind === 'init') {
      if (this.current && this.current.seq === item.seq && this.current.ts === item.ts) return undefined;
      this.current = item;
      this.seq = Math.max(this.seq, item.seq - 1);
      this.awaitingKeyframe = true;
      this.dropGop(false);
      return item;
    }
    if (!this.current || item.seq <= this.seq) return undefined;
    if (this.awaitingKeyframe && !item.keyframe) return undefined;
    this.awaitingKeyframe = false;
    this.seq = item.seq;
    if (item.keyframe) this.dropGop(this.opts.gopCache);
    if (this.caching) {
      this.gop.push(item);
      this.gopBytes += item.data.byteLength;
      if (this.gopBytes > this.opts.maxGopBytes) this.dropGop(false);
    }
    return item;
  }

  /** The track's publisher changed (cluster: a new owner): seq starts over, no init until its next. */
  restart(): void {
    this.seq = 0;
    this.stop();
  }

  /**
   * The camera stopped (its ffmpeg exited): new viewers get nothing until the next init,
   * rather than a frozen GOP presented as live. Subscribers stay subscribed.
   */
  stop(): void {
    this.current = undefined;
    this.dropGop(false);
  }

  /**
   * A restarted ffmpeg starts its decode times at 0 again, with the same init bytes: a player
   * would get fragments timed before what it already played, and stall. Each run's decode times
   * are shifted so the timeline goes on where the last run ended; a player sees one stream.
   */
  private continueTimeline(piece: MediaFragment): void {
    if (this.shift === undefined) {
      this.shift = this.endPts > 0 ? Math.round(this.endPts * this.timescale) - piece.decodeTime : 0;
    }
    if (this.shift !== 0) rebaseDecodeTime(piece, piece.decodeTime + this.shift);
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
