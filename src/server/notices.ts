import type { TemplatedApp } from 'uWebSockets.js';
import { extractToken, isAdmin, recordAuthFailure } from './auth.js';
import type { ServerContext } from './context.js';
import {
  BodyReader,
  BodyTooLargeError,
  declaresTooLarge,
  handleAsync,
  refuseBody,
  sendError,
  sendJson,
} from './http-util.js';

const MAX_NOTICE_BODY = 16 * 1024;
const MAX_MESSAGE_CHARS = 1000;

/**
 * `POST /api/v1/notices` `{message}` (admin): broadcasts an operator notice on the `system`
 * topic, e.g. "maintenance at 02:00", which every camera wall shows. Like all events it is kept
 * in history, so viewers that reconnect with Last-Event-ID or hello resume get it too.
 * Everything the headers can decide (length, token, role, content type) is decided before the
 * body is read, so a refused request costs no more than its headers.
 */
export function registerNotices(app: TemplatedApp, ctx: ServerContext): void {
  app.post('/api/v1/notices', (res, req) => {
    if (declaresTooLarge(req, MAX_NOTICE_BODY)) {
      return sendError(res, 413, 'TOO_LARGE', `request body over ${MAX_NOTICE_BODY} bytes`, {}, true);
    }
    const { token } = extractToken({
      authorization: req.getHeader('authorization'),
      query: req.getQuery() ?? '',
    });
    const contentType = req.getHeader('content-type');
    const body = new BodyReader(res, req, MAX_NOTICE_BODY);
    handleAsync(
      res,
      async (isAborted) => {
        let admin: boolean;
        try {
          admin = isAdmin(await ctx.auth.verify(token));
        } catch (err) {
          recordAuthFailure(ctx, 'notices', err);
          if (!isAborted()) refuseBody(res, body, 401, 'UNAUTHORIZED', (err as Error).message);
          return;
        }
        if (isAborted()) return;
        if (!admin) return refuseBody(res, body, 403, 'FORBIDDEN', 'notices need role admin');
        if (!contentType.startsWith('application/json')) {
          return refuseBody(res, body, 415, 'UNSUPPORTED_MEDIA_TYPE', 'send application/json');
        }
        let raw: Buffer;
        try {
          raw = await body.read();
        } catch (err) {
          if (isAborted()) return;
          if (err instanceof BodyTooLargeError) return refuseBody(res, body, 413, 'TOO_LARGE', err.message);
          throw err;
        }
        if (isAborted()) return;
        let message: unknown;
        try {
          message = (JSON.parse(raw.toString('utf8')) as { message?: unknown }).message;
        } catch (err) {
          return sendError(res, 400, 'BAD_REQUEST', `body is not JSON: ${(err as Error).message}`);
        }
        if (typeof message !== 'string' || message.length === 0 || message.length > MAX_MESSAGE_CHARS) {
          return sendError(
            res,
            422,
            'INVALID_FIELD',
            `"message" must be a string of 1..${MAX_MESSAGE_CHARS} characters`,
          );
        }
        const entry = ctx.hub.publishEvent('system', { type: 'system', kind: 'notice', message });
        sendJson(res, 202, { topic: entry.topic, seq: entry.seq });
      },
      body,
    );
  });
}
