import type { TemplatedApp } from 'uWebSockets.js';
import { FramehubError } from '../errors.js';
import { httpCredentials, requireRole } from './auth-guard.js';
import type { ServerContext } from './context.js';
import { BodyReader, handleAsync, refuseDeclaredTooLarge, sendJson } from './http-util.js';

const MAX_NOTICE_BODY = 16 * 1024;
const MAX_MESSAGE_CHARS = 1000;

/** The notice text of a `{message}` body; throws 400 or 422 with a message that never echoes the body. */
function noticeMessage(raw: Buffer): string {
  let message: unknown;
  try {
    message = (JSON.parse(raw.toString('utf8')) as { message?: unknown }).message;
  } catch {
    throw new FramehubError('BAD_REQUEST', 'body is not JSON', 400);
  }
  if (typeof message !== 'string' || message.length === 0 || message.length > MAX_MESSAGE_CHARS) {
    throw new FramehubError(
      'INVALID_FIELD',
      `"message" must be a string of 1..${MAX_MESSAGE_CHARS} characters`,
      422,
    );
  }
  return message;
}

/**
 * `POST /api/v1/notices` `{message}` (admin): broadcasts an operator notice on the `system`
 * topic, e.g. "maintenance at 02:00", which every camera wall shows. Like all events it is kept
 * in history, so viewers that reconnect with Last-Event-ID or hello resume get it too.
 * Everything the headers can decide (length, token, role, content type) is decided before the
 * body is read, so a refused request costs no more than its headers.
 */
export function registerNotices(app: TemplatedApp, ctx: ServerContext): void {
  app.post('/api/v1/notices', (res, req) => {
    refuseDeclaredTooLarge(req, MAX_NOTICE_BODY);
    const credentials = httpCredentials(res, req);
    const contentType = req.getHeader('content-type');
    const body = new BodyReader(res, req, MAX_NOTICE_BODY);
    handleAsync(
      ctx,
      res,
      async (isAborted) => {
        await requireRole(ctx, 'notices', credentials, 'admin');
        if (!contentType.startsWith('application/json')) {
          throw new FramehubError('UNSUPPORTED_MEDIA_TYPE', 'send application/json', 415);
        }
        const message = noticeMessage(await body.read());
        if (isAborted()) return;
        const entry = ctx.hub.publishEvent('system', { type: 'system', kind: 'notice', message });
        sendJson(res, 202, { topic: entry.topic, seq: entry.seq });
      },
      body,
    );
  });
}
