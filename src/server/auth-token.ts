/**
 * Prefix of the WebSocket subprotocol entry that carries a token, for browsers, which cannot
 * set headers on `new WebSocket()`. The full entry is `framehub.bearer.<jwt>`; a JWT is
 * base64url plus dots, so it is a valid subprotocol token as it stands.
 */
export const BEARER_PROTOCOL_PREFIX = 'framehub.bearer.';

export interface TokenSource {
  /** The `Authorization` header. */
  authorization?: string;
  /** The raw query string, with or without the leading `?`. */
  query?: string;
  /** The `Sec-WebSocket-Protocol` header: a comma-separated list. */
  protocols?: string;
}

export interface ExtractedToken {
  token?: string;
  /**
   * The subprotocol to echo in the upgrade response, or undefined when the client offered
   * none. Browsers fail the handshake unless one offered entry is echoed, so this is the
   * first entry that is not a bearer entry (e.g. `framehub`), and the bearer entry itself
   * only when nothing else was offered. Clients should offer a plain entry first so the
   * token does not come back in a response header.
   */
  protocol?: string;
}

const BEARER_HEADER = /^Bearer +(\S+) *$/i;

/**
 * Finds the token a client sent. Precedence: `Authorization: Bearer <jwt>`, then the
 * `framehub.bearer.<jwt>` subprotocol, then `?token=<jwt>` (for EventSource and <img>,
 * which can set neither; note that query strings end up in access logs).
 *
 * @example
 *   // browser: new WebSocket(url, ['framehub', `framehub.bearer.${jwt}`])
 *   extractToken({ protocols: 'framehub, framehub.bearer.eyJ…' })
 *   // → { token: 'eyJ…', protocol: 'framehub' }
 */
export function extractToken(src: TokenSource): ExtractedToken {
  const offered = src.protocols
    ? src.protocols
        .split(',')
        .map((p) => p.trim())
        .filter(Boolean)
    : [];
  const bearer = offered.find((p) => p.startsWith(BEARER_PROTOCOL_PREFIX));
  const protocol = offered.find((p) => !p.startsWith(BEARER_PROTOCOL_PREFIX)) ?? bearer;
  const token =
    nonEmpty(src.authorization ? BEARER_HEADER.exec(src.authorization)?.[1] : undefined) ??
    nonEmpty(bearer?.slice(BEARER_PROTOCOL_PREFIX.length)) ??
    nonEmpty(src.query ? new URLSearchParams(src.query).get('token') : undefined);
  return { token, protocol };
}

const nonEmpty = (s: string | null | undefined): string | undefined => (s ? s : undefined);
