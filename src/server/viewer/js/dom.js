// @ts-check
/** Small DOM helpers shared by the tile and the wall. */

/**
 * A DOM write that happens only when the value changes: the stats of a wall of tiles are
 * recomputed twice a second, and most of them are the same as last time.
 *
 * @template T
 * @param {(value: T) => void} write
 * @returns {(value: T) => void}
 * @example const fps = changes((v) => { el.textContent = v; }); fps('9.8'); fps('9.8'); // one write
 */
export function changes(write) {
  /** @type {{ value: T } | undefined} */
  let last;
  return (value) => {
    if (last && Object.is(last.value, value)) return;
    last = { value };
    write(value);
  };
}

/**
 * The element a selector names, or an exception that says which one is missing: a page
 * whose markup lost an element fails at start-up with a message, not later with a TypeError.
 *
 * @template {Element} E
 * @param {ParentNode} root
 * @param {string} selector
 * @param {new (...args: never[]) => E} type
 * @returns {E}
 */
export function find(root, selector, type) {
  const el = root.querySelector(selector);
  if (!(el instanceof type)) throw new Error(`viewer markup: no ${type.name} at "${selector}"`);
  return el;
}

/**
 * Fills a <select> with options; an existing first option with value "" (a placeholder) stays.
 * @param {HTMLSelectElement} select
 * @param {readonly string[]} values
 * @param {(value: string) => string} [label]
 */
export function fillSelect(select, values, label = (v) => v) {
  for (const value of values) select.add(new Option(label(value), value));
}
