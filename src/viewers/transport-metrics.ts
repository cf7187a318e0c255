import type { Counter, Gauge } from 'prom-client';
import type { Metrics } from '../metrics/metrics.js';
import type { TransportName } from './transport.js';

/**
 * A transport's metric children, bound once when its group is made: nothing on a viewer's
 * path calls `.labels()` (which builds a label key per call). Frames and bytes are counted
 * once per fan-out with the totals, not once per viewer.
 */
export class TransportMetrics {
  readonly connections: Gauge.Internal<string>;
  readonly connects: Counter.Internal;
  readonly disconnects: Counter.Internal;
  readonly slowViewers: Gauge.Internal<string>;
  readonly slowDisconnects: Counter.Internal;
  readonly variantSwitches: Counter.Internal;
  /** framehub_auth_failures_total{reason="expired"}: the token ran out while connected. */
  readonly expired: Counter.Internal;
  /** framehub_frames_dropped_total{reason="slow"}, shared by every transport. */
  readonly slowDrops: Counter.Internal;
  /** framehub_frames_dropped_total{reason="keyframe_wait",transport}: video fragments a viewer skipped until a keyframe. */
  readonly keyframeWaits: Counter.Internal;
  readonly topicLimit: Counter.Internal;
  readonly sweepErrors: Counter.Internal;
  private readonly framesSent: Counter.Internal;
  private readonly bytesSent: Counter.Internal;

  constructor(metrics: Metrics, transport: TransportName) {
    this.connections = metrics.connections.labels(transport);
    this.connects = metrics.connects.labels(transport);
    this.disconnects = metrics.disconnects.labels(transport);
    this.slowViewers = metrics.slowViewers.labels(transport);
    this.slowDisconnects = metrics.slowDisconnects.labels(transport);
    this.variantSwitches = metrics.variantSwitches.labels(transport);
    this.expired = metrics.authFailures.labels(transport, 'expired');
    this.slowDrops = metrics.framesDropped.labels({ reason: 'slow' });
    this.keyframeWaits = metrics.framesDropped.labels({ reason: 'keyframe_wait', transport });
    this.topicLimit = metrics.limitRejections.labels('topics_per_connection');
    this.sweepErrors = metrics.handlerErrors.labels(`${transport}.sweep`);
    this.framesSent = metrics.framesSent.labels(transport);
    this.bytesSent = metrics.bytesSent.labels(transport);
  }

  /** `frames` frames of `bytes` bytes in all went out, in one fan-out or one direct send. */
  sent(frames: number, bytes: number): void {
    this.framesSent.inc(frames);
    this.bytesSent.inc(bytes);
  }
}
