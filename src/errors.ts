/**
 * Base class for every failure framehub reports to a client or an operator.
 * `code` is stable UPPER_SNAKE and is what clients and tests match on; `status`
 * is the HTTP status the code maps to when it reaches an HTTP client.
 *
 * @example
 *   throw new FramehubError('BAD_TOPIC', 'topic "x" is not valid', 400);
 */
export class FramehubError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status = 500,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

/** A record does not fit the ring even when the ring is empty. */
export class RecordTooLargeError extends FramehubError {
  constructor(size: number, max: number) {
    super(
      'RECORD_TOO_LARGE',
      `record of ${size} bytes exceeds the ring's maximum record size of ${max} bytes`,
    );
  }
}

/** Configuration failed validation; the message names the field. */
export class ConfigError extends FramehubError {
  constructor(message: string) {
    super('BAD_CONFIG', message);
  }
}
