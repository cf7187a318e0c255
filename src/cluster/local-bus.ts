import { randomUUID } from 'node:crypto';
import type { ClusterBus, ClusterStatus } from './bus.js';

/**
 * The default bus: one node, no Redis. Every camera is ingested here and nothing crosses, so
 * each method is a constant answer; the daemon adds no sink for it, so no frame pays for it.
 */
export class LocalBus implements ClusterBus {
  readonly nodeId: string;

  constructor(nodeId?: string) {
    this.nodeId = nodeId ?? randomUUID().slice(0, 8);
  }

  up(): boolean {
    return true;
  }

  async start(): Promise<void> {}

  async stop(): Promise<void> {}

  wanted(_topic: string): void {}

  remoteDemand(_topic: string): boolean {
    return false;
  }

  setOwned(_camera: string, _owned: boolean, _token?: number): void {}

  async freshen(_topic: string): Promise<void> {}

  async status(): Promise<ClusterStatus | undefined> {
    return undefined;
  }
}
