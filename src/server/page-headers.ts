import { createHash } from 'node:crypto';

/**
 * Security headers for the camera wall page. The policy allows what the page loads and nothing
 * else:
 * - scripts: only files from this origin (`/viewer.js`, `/vendor/msgpackr.js`, its no-eval
 *   build), so an injected inline script or `eval` does not run;
 * - styles: files from this origin (`viewer.css`), plus any inline `<style>` block by its hash,
 *   computed here from the file served, so editing the page cannot leave a stale hash behind
 *   (the page has none today; `element.style.setProperty` from a script is not restricted);
 * - images: this origin (MJPEG `<img>`), `data:` (the empty favicon) and `blob:` (frame blobs);
 * - connections: `'self'`, which CSP Level 3 browsers also match against `ws:`/`wss:` to the
 *   same host and port, so the page's WebSocket, SSE and fetch need nothing wider;
 * - no framing (`frame-ancestors 'none'` and `X-Frame-Options: DENY` for older browsers), no
 *   `<base>`, no form posts, no plugins.
 * `Referrer-Policy: no-referrer` keeps a `?token=` in the page's URL out of Referer headers.
 *
 * @example
 *   pageSecurityHeaders('<style>a{}</style>')['Content-Security-Policy']
 *   // "default-src 'none'; script-src 'self'; style-src 'self' 'sha256-…'; …"
 */
export function pageSecurityHeaders(html: string): Record<string, string> {
  const styles = inlineBlocks(html, 'style').map((css) => `'sha256-${sha256(css)}'`);
  const policy = [
    "default-src 'none'",
    "script-src 'self'",
    ["style-src 'self'", ...styles].join(' '),
    "img-src 'self' data: blob:",
    // The MSE tiles play a MediaSource, which a <video> opens through a blob: URL.
    "media-src 'self' blob:",
    "connect-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
  return {
    'Content-Security-Policy': policy,
    'X-Frame-Options': 'DENY',
    'Referrer-Policy': 'no-referrer',
  };
}

/** The text of every `<tag>…</tag>` block written without attributes. */
function inlineBlocks(html: string, tag: string): string[] {
  const blocks: string[] = [];
  const pattern = new RegExp(`<${tag}>([\\s\\S]*?)</${tag}>`, 'gi');
  for (const match of html.matchAll(pattern)) blocks.push(match[1] ?? '');
  return blocks;
}

const sha256 = (text: string) => createHash('sha256').update(text, 'utf8').digest('base64');
