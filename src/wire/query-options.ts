import { z } from 'zod';
import { FramehubError } from '../errors.js';

/**
 * A job's options from its query string, for every job kind: each parameter at most once, none
 * unknown (`token` is the auth guard's), each checked by its zod rule. Every refusal is 400
 * INVALID_FIELD naming the parameter and what it must be; no message echoes a client's value.
 */

/** A decimal integer parameter from `min` to `max` (at most 10 digits, so never a float or an exponent). */
export const queryInteger = (min: number, max: number) =>
  z
    .string()
    .regex(/^\d{1,10}$/)
    .transform(Number)
    .pipe(z.number().min(min).max(max));

export const invalidField = (message: string) => new FramehubError('INVALID_FIELD', message, 400);

/** A parameter name is shown back only when it is short and plain. */
const shown = (name: string) => (/^[\w.-]{1,40}$/.test(name) ? `"${name}"` : '(name not shown)');

/** Parameters of a job endpoint that are not job options: the auth guard reads `token`. */
const NOT_OPTIONS = new Set(['token']);

/**
 * Parses `query` with `schema`, whose fields are exactly the keys of `rules` (what each must
 * be, for the refusal).
 *
 * @example
 *   parseQueryOptions(new URLSearchParams('hls=true'), z.object({ hls: z.enum(['true', 'false']) }), { hls: 'true or false' }, 'video jobs')
 * @throws FramehubError INVALID_FIELD (400) naming the first parameter at fault.
 */
export function parseQueryOptions<S extends z.ZodType>(
  query: URLSearchParams,
  schema: S,
  rules: Readonly<Record<string, string>>,
  kind: string,
): z.output<S> {
  const given: Record<string, string> = {};
  for (const [name, value] of query) {
    if (NOT_OPTIONS.has(name)) continue;
    if (!Object.hasOwn(rules, name)) {
      throw invalidField(`unknown parameter ${shown(name)}; ${kind} take ${Object.keys(rules).join(', ')}`);
    }
    if (given[name] !== undefined) throw invalidField(`${name} is given more than once`);
    given[name] = value;
  }
  const parsed = schema.safeParse(given);
  if (!parsed.success) {
    const field = String(parsed.error.issues[0]?.path[0]);
    throw invalidField(`${field} must be ${rules[field]}`);
  }
  return parsed.data;
}
