import { SignJWT } from 'jose';

/** The HS256 secret the auth suites configure (`auth.hs256Secret`). */
export const TEST_SECRET = 'a-test-secret-that-is-at-least-32-bytes-long';

/** A token signed with TEST_SECRET for subject `tester`, valid for `exp` (a jose time span). */
export const signToken = (claims: Record<string, unknown>, exp = '1h') =>
  new SignJWT(claims)
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject('tester')
    .setExpirationTime(exp)
    .sign(new TextEncoder().encode(TEST_SECRET));

/** Every `framehub_auth_failures_total` series of a /metrics text, as "transport/reason" → value. */
export function authFailureCounts(metricsText: string): Map<string, number> {
  const out = new Map<string, number>();
  const series = /^framehub_auth_failures_total\{transport="([^"]+)",reason="([^"]+)"\} (\S+)$/gm;
  for (const m of metricsText.matchAll(series)) out.set(`${m[1]}/${m[2]}`, Number(m[3]));
  return out;
}
