import type { HttpResponse } from 'uWebSockets.js';
import type { HistoryEntry } from '../hub/history.js';
import type { Frame, RecordSink } from '../hub/hub.js';
import type { ResumePlan } from '../hub/resume.js';
import type { VideoItem } from '../hub/video-track.js';
import type { Framing, ViewerTransport } from '../viewers/transport.js';
import { ViewerGroup, type ViewerGroupOptions } from '../viewers/viewer-group.js';
import { ViewerSession } from '../viewers/viewer-session.js';
import type { Principal } from './auth.js';
import type { ServerContext } from './context.js';

export type StreamTransport = 'sse' | 'mjpeg';

/**
 * A long-lived HTTP response (SSE or MJPEG) and what its adapter tracks. uWS reports no
 * buffered byte count for a response, only that a write had to be buffered (`write()` false)
 * and, later, that it can take more (`onWritable`): a signalled transport. What it holds is
 * counted from the write that blocked, for the hard limit.
 */
class HttpStream {
  /** uWS had to buffer a write: the session skips frames until onWritable. */
  blocked = false;
  /** Bytes written since the response blocked (events still are; frames are not). */
  blockedBytes = 0;
  private finished = false;
  private pending: Uint8Array | undefined;
  private accepted = true;
  /** One corked write, made once per response rather than a closure per write. */
  private readonly corkedWrite = () => {
    this.accepted = this.res.write(this.pending!);
  };

  constructor(
    readonly res: HttpResponse,
    /** Gives back the response's connection-limit slot; called once, when it ends. */
    private readonly release: () => void,
  ) {}

  write(bytes: Uint8Array): boolean {
    this.pending = bytes;
    this.res.cork(this.corkedWrite);
    this.pending = undefined;
    if (this.blocked) this.blockedBytes += bytes.byteLength;
    else if (!this.accepted) {
      this.blocked = true;
      this.blockedBytes = 0;
    }
    return this.accepted;
  }

  finish(): void {
    if (this.finished) return;
    this.finished = true;
    this.release();
  }
}

/** The SSE and MJPEG adapters: a slow or failed stream is cut, the others end cleanly. */
const httpTransport = (name: StreamTransport): ViewerTransport<HttpStream> => ({
  name,
  backpressure: 'signalled',
  write: (stream, bytes) => stream.write(bytes),
  bufferedAmount: (stream) => (stream.blocked ? stream.blockedBytes : 0),
  cork: (stream, fn) => {
    stream.res.cork(fn);
  },
  close: (stream, reason) => {
    stream.finish();
    stream.res.cork(() => (reason === 'slow' || reason === 'error' ? stream.res.close() : stream.res.end()));
  },
});

/**
 * Wires a response's uWS callbacks to its session. uWS drains its buffer of a response only
 * on our next write while an onWritable handler is set; the session writes then (see
 * ViewerSession.drained). The handler returns whether everything went out, as uWS asks.
 */
function attach(session: ViewerSession<HttpStream>): void {
  const stream = session.conn;
  stream.res.onAborted(() => {
    session.close();
    stream.finish();
  });
  stream.res.onWritable(() => {
    if (!stream.blocked || session.closed) return true;
    stream.blocked = false;
    stream.blockedBytes = 0;
    session.drained();
    return !stream.blocked;
  });
}

/**
 * Fan-out to SSE and MJPEG viewers: one viewer group per transport, each fanning frames and
 * events out in JS (HTTP has no native pub/sub), with the shared session policy: a response
 * that blocks skips frames (counted) and gets the newest one when it drains, so a slow viewer
 * holds at most about one frame plus its events.
 */
export class HttpStreams implements RecordSink {
  private readonly groups = new Map<StreamTransport, ViewerGroup<HttpStream>>();

  constructor(private readonly ctx: ServerContext) {}

  /** Makes a transport's group (once, when its route is registered). */
  register(transport: StreamTransport, heartbeat?: ViewerGroupOptions['heartbeat']): ViewerGroup<HttpStream> {
    const group = new ViewerGroup(this.ctx, httpTransport(transport), { sweepIntervalMs: 100, heartbeat });
    this.groups.set(transport, group);
    return group;
  }

  /**
   * Starts a viewer on a response whose headers are written: its topics (already checked and
   * within the limit), then what it missed (`plan`). Its connection-limit slot is given back
   * when it ends.
   */
  open(
    group: ViewerGroup<HttpStream>,
    res: HttpResponse,
    framing: Framing,
    ip: string,
    principal: Principal,
    requested: string[],
    plan?: ResumePlan,
  ): void {
    const session = new ViewerSession(group, new HttpStream(res, () => this.ctx.limits.release(ip)), framing);
    if (Number.isFinite(principal.expiresAtMs)) session.expiresAtMs = principal.expiresAtMs;
    attach(session);
    session.open();
    const now = Date.now();
    for (const name of requested) session.add(name, now);
    if (plan) session.replay(plan);
  }

  publishFrame(frame: Frame): void {
    for (const g of this.groups.values()) g.publishFrame(frame);
  }

  publishEvent(entry: HistoryEntry): void {
    for (const g of this.groups.values()) g.publishEvent(entry);
  }

  publishVideo(item: VideoItem): void {
    for (const g of this.groups.values()) g.publishVideo(item);
  }

  restartTopic(topic: string): void {
    for (const g of this.groups.values()) g.restartTopic(topic);
  }

  subscribers(topic: string): number {
    let n = 0;
    for (const g of this.groups.values()) n += g.subscribers(topic);
    return n;
  }

  census() {
    const byTransport: Record<StreamTransport, number> = { sse: 0, mjpeg: 0 };
    const byVariant: Record<string, number> = {};
    let slow = 0;
    for (const [transport, g] of this.groups) {
      const c = g.census();
      byTransport[transport] = c.total;
      slow += c.slow;
      for (const [variant, n] of Object.entries(c.byVariant))
        byVariant[variant] = (byVariant[variant] ?? 0) + n;
    }
    return { byTransport, byVariant, slow };
  }

  /** Ends every stream (shutdown). */
  closeAll(): void {
    for (const g of this.groups.values()) g.closeAll();
  }
}
