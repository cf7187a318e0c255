/**
 * The overlay of the `annotated` variant, as an SVG sharp composites onto the `medium` frame:
 * the camera's name in a band at the top, the capture time (UTC) in a band at the bottom, and
 * a red dot with "speech" at the bottom right while the camera's VAD says speech. Pure string
 * building; sharp (librsvg) renders it.
 */

/** What the overlay shows for one frame. */
export interface FrameAnnotation {
  /** The camera's name, or its id: outside text, escaped here. */
  label: string;
  /** Capture time, ms since the epoch (the frame's `ts`). */
  ts: number;
  speech: boolean;
}

/** Sizes at a 640 px wide frame; other widths scale them. */
const BAND = 24;
const FONT = 15;
const PAD = 8;
const DOT = 6;
/** A label longer than this is cut: ids are at most 64 characters, and longer text would only run off the frame. */
const MAX_LABEL = 64;

/** Where the overlay draws on a frame of `width` × `height` (tests look for the bands and the dot). */
export interface OverlayLayout {
  /** Height of the top band (name) and of the bottom band (time, speech). */
  band: number;
  font: number;
  pad: number;
  /** The speech dot, inside the bottom band at the right. */
  dot: { cx: number; cy: number; r: number };
}

/**
 * @example
 *   overlayLayout(640, 360) // { band: 24, font: 15, pad: 8, dot: { cx: 626, cy: 348, r: 6 } }
 */
export function overlayLayout(width: number, height: number): OverlayLayout {
  const s = width / 640;
  const band = Math.max(8, Math.round(BAND * s));
  const pad = Math.round(PAD * s);
  const r = Math.max(2, Math.round(DOT * s));
  return {
    band,
    font: Math.max(6, Math.round(FONT * s)),
    pad,
    dot: { cx: width - pad - r, cy: height - band / 2, r },
  };
}

/**
 * The overlay for a frame of `width` × `height`. The SVG is exactly the frame's size, as sharp's
 * composite requires; only the two bands and the indicator are drawn, the rest is transparent.
 *
 * @example
 *   annotationSvg({ label: 'Door <1>', ts: 0, speech: false }, 640, 360)
 *   // '<svg … width="640" height="360">…Door &lt;1&gt;…1970-01-01 00:00:00 UTC…</svg>'
 */
export function annotationSvg(annotation: FrameAnnotation, width: number, height: number): string {
  const { band, font, pad, dot } = overlayLayout(width, height);
  const baseline = Math.round(band * 0.72);
  const bottom = height - band;
  const text = `fill="#fff" font-size="${font}"`;
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">`,
    `<rect width="${width}" height="${band}" fill="#000" fill-opacity="0.55"/>`,
    `<rect y="${bottom}" width="${width}" height="${band}" fill="#000" fill-opacity="0.55"/>`,
    `<text x="${pad}" y="${baseline}" ${text} font-family="DejaVu Sans, sans-serif">${xmlText(cut(annotation.label))}</text>`,
    `<text x="${pad}" y="${bottom + baseline}" ${text} font-family="DejaVu Sans Mono, monospace">${captureTimeText(annotation.ts)}</text>`,
  ];
  if (annotation.speech) {
    parts.push(
      `<circle cx="${dot.cx}" cy="${dot.cy}" r="${dot.r}" fill="#e02020"/>`,
      `<text x="${dot.cx - 2 * dot.r}" y="${bottom + baseline}" ${text} text-anchor="end" font-family="DejaVu Sans, sans-serif">speech</text>`,
    );
  }
  parts.push('</svg>');
  return parts.join('');
}

/**
 * `YYYY-MM-DD HH:MM:SS UTC`, from the components rather than toISOString, which throws on a
 * time outside Date's range (a publisher's ts may go up to 2^53) and writes years past 9999
 * with a sign.
 */
export function captureTimeText(ts: number): string {
  const d = new Date(ts);
  if (Number.isNaN(d.getTime())) return 'time unknown';
  const two = (n: number) => String(n).padStart(2, '0');
  const date = `${d.getUTCFullYear()}-${two(d.getUTCMonth() + 1)}-${two(d.getUTCDate())}`;
  return `${date} ${two(d.getUTCHours())}:${two(d.getUTCMinutes())}:${two(d.getUTCSeconds())} UTC`;
}

/**
 * Text safe inside an SVG element: the five XML specials as entities, and what XML 1.0 cannot
 * hold at all (control characters, lone surrogates) as spaces, since librsvg refuses the whole
 * document for one of them and the frame would lose its overlay.
 */
export function xmlText(value: string): string {
  return value.replace(/[\p{Cc}\p{Cs}\uFFFE\uFFFF]/gu, ' ').replace(/[&<>"']/g, (c) => ENTITIES[c]!);
}

const ENTITIES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&apos;',
};

/** At most MAX_LABEL code points, so a cut never splits a surrogate pair. */
function cut(label: string): string {
  const chars = Array.from(label);
  return chars.length <= MAX_LABEL ? label : `${chars.slice(0, MAX_LABEL - 1).join('')}…`;
}
