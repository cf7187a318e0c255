// @ts-check
/**
 * Input the page could not use (a record that does not decode, a frame without a seq, …):
 * counted per kind where it arrived, and said on the console once per kind per page, since
 * a broken server would otherwise print a line per frame. The counts are on the page for
 * scripts and tests: data-malformed and data-malformed-kinds on the tile (or on #wall, for
 * the shared event socket). DOM-free.
 */

/** Kinds already reported on the console, page-wide. */
const warned = new Set();

export class MalformedCount {
  /** @param {() => string} where  names the receiver in the console line, e.g. 'tile cam1 (ws)' */
  constructor(where) {
    this.where = where;
    /** @type {Map<string, number>} kind → count */
    this.kinds = new Map();
    this.total = 0;
    this.last = '';
  }

  /** @param {string} kind @param {string} detail */
  add(kind, detail) {
    this.kinds.set(kind, (this.kinds.get(kind) ?? 0) + 1);
    this.total++;
    this.last = `${kind}: ${detail}`;
    if (warned.has(kind)) return;
    warned.add(kind);
    console.warn(
      `framehub wall: malformed ${kind} on ${this.where()}: ${detail} ` +
        `(further "${kind}" input is only counted, in data-malformed)`,
    );
  }

  /** Per-kind counts in arrival order of the kinds, e.g. 'frame:2 undecodable:1'. */
  summary() {
    return [...this.kinds].map(([kind, n]) => `${kind}:${n}`).join(' ');
  }
}
