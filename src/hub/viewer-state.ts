import type { FrameVariant } from '../image/variant-names.js';
import { AutoVariant, type AutoVariantOptions } from './auto-variant.js';
import { parseTopic } from './topics.js';

export interface SlowOptions {
  /** Buffered bytes above which a viewer skips frames. */
  softBytes: number;
  /** Buffered bytes that, held for longer than slowCloseMs, close the viewer. */
  hardBytes: number;
  slowCloseMs: number;
}

export type SlowChange = 'slow' | 'recovered' | 'close' | undefined;

/**
 * Per-viewer slowness, driven by its buffered bytes. Enters slow above softBytes and
 * leaves below softBytes/2 (a gap, so a viewer on the edge does not toggle every sample).
 */
export class SlowState {
  slow = false;
  private overHardSince = 0;

  constructor(private readonly opts: SlowOptions) {}

  observe(buffered: number, now: number): SlowChange {
    if (buffered > this.opts.hardBytes) {
      if (!this.overHardSince) this.overHardSince = now;
      else if (now - this.overHardSince >= this.opts.slowCloseMs) return 'close';
    } else {
      this.overHardSince = 0;
    }
    if (!this.slow && buffered > this.opts.softBytes) {
      this.slow = true;
      return 'slow';
    }
    if (this.slow && buffered <= this.opts.softBytes / 2) {
      this.slow = false;
      return 'recovered';
    }
    return undefined;
  }
}

/**
 * A variant switch made by an auto subscription: the viewer asked for `requested` and now
 * gets `variant`. `detach`/`attach` are the concrete topics to stop and start receiving;
 * either is absent when another requested topic of the viewer still (or already) needs it.
 */
export interface VariantSwitch {
  requested: string;
  variant: FrameVariant;
  detach?: string;
  attach?: string;
}

/**
 * The topics one viewer asked for, and the concrete topics it receives. `cam/x/auto` is
 * requested as is and received as `cam/x/<current variant>`, so two requested topics
 * (`cam/x/auto` and `cam/x/medium`) can share one concrete topic; it is counted, and only
 * the first request attaches it and the last release detaches it.
 */
export class ViewerTopics {
  /** requested topic → concrete topic */
  private readonly topics = new Map<string, string>();
  private readonly autos = new Map<string, AutoVariant>();
  /** concrete topic → how many requested topics it serves */
  private readonly receiving = new Map<string, number>();

  constructor(private readonly autoOpts: AutoVariantOptions) {}

  get size(): number {
    return this.topics.size;
  }

  has(requested: string): boolean {
    return this.topics.has(requested);
  }

  /** Adds a requested topic; `attach` is true when its concrete topic is new to this viewer. */
  add(requested: string, now: number): { concrete: string; attach: boolean } {
    const existing = this.topics.get(requested);
    if (existing !== undefined) return { concrete: existing, attach: false };
    const auto = autoCamera(requested);
    let concrete = requested;
    if (auto) {
      const state = new AutoVariant(this.autoOpts, now);
      this.autos.set(requested, state);
      concrete = `cam/${auto}/${state.current}`;
    }
    this.topics.set(requested, concrete);
    return { concrete, attach: this.hold(concrete) };
  }

  /** Removes a requested topic; returns its concrete topic when nothing else needs it any more. */
  remove(requested: string): string | undefined {
    const concrete = this.topics.get(requested);
    if (concrete === undefined) return undefined;
    this.topics.delete(requested);
    this.autos.delete(requested);
    return this.release(concrete) ? concrete : undefined;
  }

  /** Every concrete topic received, once each. */
  concrete(): string[] {
    return [...this.receiving.keys()];
  }

  frameTopics(): string[] {
    return this.concrete().filter((t) => parseTopic(t)?.kind === 'frame');
  }

  requested(): [requested: string, concrete: string][] {
    return [...this.topics.entries()];
  }

  /** Advances every auto subscription; returns the switches to apply. */
  adapt(slow: boolean, now: number): VariantSwitch[] {
    const switches: VariantSwitch[] = [];
    for (const [requested, auto] of this.autos) {
      const variant = auto.update(slow, now);
      if (!variant) continue;
      const from = this.topics.get(requested)!;
      const to = `cam/${autoCamera(requested)}/${variant}`;
      this.topics.set(requested, to);
      switches.push({
        requested,
        variant,
        detach: this.release(from) ? from : undefined,
        attach: this.hold(to) ? to : undefined,
      });
    }
    return switches;
  }

  /** Counts one more use of `concrete`; true on the first. */
  private hold(concrete: string): boolean {
    const n = this.receiving.get(concrete) ?? 0;
    this.receiving.set(concrete, n + 1);
    return n === 0;
  }

  /** Counts one use fewer of `concrete`; true on the last. */
  private release(concrete: string): boolean {
    const n = (this.receiving.get(concrete) ?? 1) - 1;
    if (n > 0) this.receiving.set(concrete, n);
    else this.receiving.delete(concrete);
    return n <= 0;
  }
}

/** The camera of an auto topic (`cam/<id>/auto`), else undefined. */
export function autoCamera(topic: string): string | undefined {
  const t = parseTopic(topic);
  return t?.kind === 'auto' ? t.camera : undefined;
}
