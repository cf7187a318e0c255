import type { ResizedVariant } from '../image/variant-names.js';

const LADDER: readonly ResizedVariant[] = ['low', 'medium', 'high'];

export interface AutoVariantOptions {
  /** Time spent slow (since the last switch) that moves a viewer one step down. */
  downAfterMs: number;
  /** Unbroken time without being slow that moves a viewer one step up. */
  upAfterMs: number;
}

/**
 * Adaptive quality for `variant=auto`. Starts at medium; one step down after `downAfterMs`
 * of accumulated slowness, one step up after `upAfterMs` of continuous health. Both clocks
 * restart at every switch, and up needs much longer than down, which is the hysteresis that
 * keeps a viewer on the edge from flapping.
 *
 * @example
 *   const auto = new AutoVariant({ downAfterMs: 1000, upAfterMs: 10000 }, Date.now());
 *   auto.update(true, Date.now() + 1500) // 'low'
 */
export class AutoVariant {
  current: ResizedVariant = 'medium';
  private slowMs = 0;
  private healthySince: number;
  private lastTick: number;

  constructor(
    private readonly opts: AutoVariantOptions,
    now: number,
  ) {
    this.healthySince = now;
    this.lastTick = now;
  }

  /** Feeds one observation; returns the new variant when it changes. */
  update(slow: boolean, now: number): ResizedVariant | undefined {
    const elapsed = now - this.lastTick;
    this.lastTick = now;
    if (slow) {
      this.slowMs += elapsed;
      this.healthySince = now;
      if (this.slowMs >= this.opts.downAfterMs) return this.step(-1, now);
    } else if (now - this.healthySince >= this.opts.upAfterMs) {
      return this.step(1, now);
    }
    return undefined;
  }

  private step(direction: 1 | -1, now: number): ResizedVariant | undefined {
    const next = LADDER[LADDER.indexOf(this.current) + direction];
    this.slowMs = 0;
    this.healthySince = now;
    if (!next) return undefined;
    this.current = next;
    return next;
  }
}
