/**
 * User info in a URL (`scheme://user:password@host`), in plain text or as ffmpeg writes it
 * back in a filter's arguments (`rtsp\://alice\:s3cret@host`). Greedy up to the last `@`
 * before the host, so a password with an unencoded `@` is caught whole.
 */
const URL_USERINFO = /([a-z][a-z0-9+.-]*\\?:\/\/)([^\s/?#]*)@/gi;

/**
 * Replaces the password in every URL of `text` with `***` (`rtsp://alice:***@cam/x`), and
 * user info without a password (which may be a token) with `***` whole.
 *
 * @example
 *   redactCredentials('[tcp] rtsp://alice:s3cret@10.0.0.5/x: Connection refused')
 *   // '[tcp] rtsp://alice:***@10.0.0.5/x: Connection refused'
 */
export function redactCredentials(text: string): string {
  return text.replace(URL_USERINFO, (_match, scheme: string, userinfo: string) => {
    const colon = /\\?:/.exec(userinfo);
    return colon ? `${scheme}${userinfo.slice(0, colon.index)}:***@` : `${scheme}***@`;
  });
}

/** True when `source` is a URL with user info, i.e. something to keep out of argv and logs. */
export function hasCredentials(source: string): boolean {
  return /^[a-z][a-z0-9+.-]*:\/\/[^/?#]*@/i.test(source);
}

/**
 * A redactor for everything said about one camera source: log lines, ffmpeg's stderr,
 * `lastError`, status. On top of redactCredentials it replaces the source's own secret
 * wherever it appears, as written and as ffmpeg echoes a filter option, so a password the URL
 * pattern cannot delimit (one with a space, say, which ffmpeg still accepts) is caught too.
 *
 * @example
 *   sourceRedactor('rtsp://alice:a b@cam/x')('rtsp://alice:a b@cam/x: Connection refused')
 *   // 'rtsp://alice:***@cam/x: Connection refused'
 */
export function sourceRedactor(source: string): (text: string) => string {
  const secret = sourceSecret(source);
  if (!secret) return redactCredentials;
  const forms = [...new Set([secret, secret.replace(/[\\':\s]/g, (c) => `\\${c}`)])];
  return (text) => {
    let out = text;
    for (const form of forms) out = out.split(form).join('***');
    return redactCredentials(out);
  };
}

/** The password of a URL source, or its whole user info when it has no password. */
function sourceSecret(source: string): string | undefined {
  const authority = /^[a-z][a-z0-9+.-]*:\/\/([^/?#]*)@/i.exec(source)?.[1];
  if (!authority) return undefined;
  const colon = authority.indexOf(':');
  return colon >= 0 ? authority.slice(colon + 1) || undefined : authority;
}
