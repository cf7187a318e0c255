import { parseTopic } from '../hub/topics.js';
import type { FrameVariant } from '../image/variant-names.js';
import { AutoVariant, type AutoVariantOptions } from './auto-variant.js';

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

const NO_SWITCHES: readonly VariantSwitch[] = Object.freeze([]);

/**
 * The topics one viewer asked for, and the concrete topics it receives. `cam/x/auto` is
 * requested as is and received as `cam/x/<current variant>`, so two requested topics
 * (`cam/x/auto` and `cam/x/medium`) can share one concrete topic; it is counted, and only
 * the first request attaches it and the last release detaches it.
 *
 * Memory is per connection, and most connections hold one plain topic, so that case is a
 * string field; the map of requested topics is made at the second topic (or the first auto
 * one), and the auto state and the shared counts only once an auto topic is added (until
 * then every requested topic is its own concrete topic, received once).
 */
export class ViewerTopics {
  /** The only requested topic, while there is one and it is not auto. */
  private one: string | undefined;
  /** requested topic → concrete topic, from the second topic or the first auto one */
  private many: Map<string, string> | undefined;
  private autos: Map<string, AutoVariant> | undefined;
  /** concrete topic → how many requested topics it serves; made with the first auto topic */
  private receiving: Map<string, number> | undefined;

  constructor(private readonly autoOpts: AutoVariantOptions) {}

  get size(): number {
    return this.many ? this.many.size : this.one === undefined ? 0 : 1;
  }

  has(requested: string): boolean {
    return this.many ? this.many.has(requested) : this.one === requested;
  }

  /** Whether any requested topic is `auto`, so `adapt` has work. */
  get adaptive(): boolean {
    return (this.autos?.size ?? 0) > 0;
  }

  /** Adds a requested topic; `attach` is true when its concrete topic is new to this viewer. */
  add(requested: string, now: number): { concrete: string; attach: boolean } {
    const existing = this.many ? this.many.get(requested) : this.one === requested ? requested : undefined;
    if (existing !== undefined) return { concrete: existing, attach: false };
    const camera = autoCamera(requested);
    if (camera === undefined && this.size === 0 && !this.many) {
      this.one = requested;
      return { concrete: requested, attach: true };
    }
    const many = this.toMap();
    let concrete = requested;
    if (camera !== undefined) {
      this.shareCounts();
      const state = new AutoVariant(this.autoOpts, now);
      this.autos ??= new Map();
      this.autos.set(requested, state);
      concrete = `cam/${camera}/${state.current}`;
    }
    many.set(requested, concrete);
    return { concrete, attach: this.hold(concrete) };
  }

  /** Removes a requested topic; returns its concrete topic when nothing else needs it any more. */
  remove(requested: string): string | undefined {
    if (!this.many) {
      if (this.one !== requested) return undefined;
      this.one = undefined;
      return requested;
    }
    const concrete = this.many.get(requested);
    if (concrete === undefined) return undefined;
    this.many.delete(requested);
    this.autos?.delete(requested);
    return this.release(concrete) ? concrete : undefined;
  }

  /** Every concrete topic received, once each. */
  concrete(): string[] {
    const held: Map<string, unknown> | undefined = this.receiving ?? this.many;
    if (held) return [...held.keys()];
    return this.one === undefined ? [] : [this.one];
  }

  requested(): [requested: string, concrete: string][] {
    if (this.many) return [...this.many];
    return this.one === undefined ? [] : [[this.one, this.one]];
  }

  /** Advances every auto subscription; returns the switches to apply (a shared empty list when none). */
  adapt(slow: boolean, now: number): readonly VariantSwitch[] {
    if (!this.autos) return NO_SWITCHES;
    let switches: VariantSwitch[] | undefined;
    for (const [requested, auto] of this.autos) {
      const variant = auto.update(slow, now);
      if (!variant) continue;
      const from = this.many!.get(requested)!;
      const to = `cam/${autoCamera(requested)}/${variant}`;
      this.many!.set(requested, to);
      switches ??= [];
      switches.push({
        requested,
        variant,
        detach: this.release(from) ? from : undefined,
        attach: this.hold(to) ? to : undefined,
      });
    }
    return switches ?? NO_SWITCHES;
  }

  /** The map of requested topics, made (with the single topic in it) on first need. */
  private toMap(): Map<string, string> {
    if (!this.many) {
      this.many = new Map();
      if (this.one !== undefined) this.many.set(this.one, this.one);
      this.one = undefined;
    }
    return this.many;
  }

  /** From the first auto topic on, concrete topics can be shared: count them from now. */
  private shareCounts(): void {
    if (this.receiving) return;
    this.receiving = new Map();
    for (const concrete of this.many!.values()) this.receiving.set(concrete, 1);
  }

  /** Counts one more use of `concrete`; true on the first. */
  private hold(concrete: string): boolean {
    if (!this.receiving) return true;
    const n = this.receiving.get(concrete) ?? 0;
    this.receiving.set(concrete, n + 1);
    return n === 0;
  }

  /** Counts one use fewer of `concrete`; true on the last. */
  private release(concrete: string): boolean {
    if (!this.receiving) return true;
    const n = (this.receiving.get(concrete) ?? 1) - 1;
    if (n > 0) this.receiving.set(concrete, n);
    else this.receiving.delete(concrete);
    return n <= 0;
  }
}

/** The camera of an auto topic (`cam/<id>/auto`), else undefined. */
function autoCamera(topic: string): string | undefined {
  const t = parseTopic(topic);
  return t?.kind === 'auto' ? t.camera : undefined;
}
