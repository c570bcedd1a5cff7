/**
 * @module api/errors
 * The one error handler: every failure leaves with its registered code in the `x-ms-error-code`
 * header and the body its front door's clients read: Azure's, `{ error: { code, message, target?,
 * additionalInfo? } }`, unless the route names E2B's REST or Connect's (api/schemas/common's `wire`). Client errors are logged at info,
 * server errors at error with their stack; a 5xx never carries internal details to the client.
 */

import { STATUS_CODES, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';

import type { FastifyError, FastifyInstance } from 'fastify';

import { AppError, ErrorCode, HTTP_STATUS, type ErrorCode as Code } from '../errors.js';
import type { Wire } from './schemas/common.js';

interface WireError {
  status: number;
  code: Code;
  message: string;
  target?: string;
  details?: Record<string, unknown>;
}

/** Fastify's own errors (parsing, limits) mapped onto the registry. */
function fromFastify(error: FastifyError): WireError | undefined {
  const status = error.statusCode;
  if (status === undefined || status < 400 || status >= 500) return undefined;
  const code: Code =
    status === 413
      ? ErrorCode.PayloadTooLarge
      : status === 415
        ? ErrorCode.UnsupportedMediaType
        : ErrorCode.InvalidRequestContent;
  return { status: HTTP_STATUS[code], code, message: error.message };
}

function toWireError(error: unknown): WireError {
  if (error instanceof AppError) {
    return {
      status: error.status,
      code: error.code,
      message: error.message,
      ...(error.target !== undefined && { target: error.target }),
      ...(error.details !== undefined && { details: error.details }),
    };
  }
  const fastify = fromFastify(error as FastifyError);
  if (fastify) return fastify;
  return {
    status: 500,
    code: ErrorCode.InternalServerError,
    message: 'The server failed to process the request; the failure is logged with its request id.',
  };
}

/** Connect's codes by HTTP status, as E2B's envd clients read a refusal. */
const CONNECT_CODES: Record<number, string> = {
  400: 'invalid_argument',
  401: 'unauthenticated',
  403: 'permission_denied',
  404: 'not_found',
  405: 'unimplemented',
  408: 'deadline_exceeded',
  409: 'already_exists',
  410: 'not_found',
  413: 'resource_exhausted',
  415: 'invalid_argument',
  429: 'resource_exhausted',
  501: 'unimplemented',
  502: 'unavailable',
  503: 'unavailable',
  507: 'resource_exhausted',
};

/**
 * The error as it leaves: status, headers and the body of the front door's clients (Azure's unless
 * `form` names another), also for replies written outside Fastify.
 */
export function renderError(
  error: unknown,
  options: { poolFullStatus: 429 | 404; form?: Wire },
): { status: number; code: Code; headers: Record<string, string>; body: Record<string, unknown> } {
  const wire = toWireError(error);
  const status = wire.code === ErrorCode.SessionPoolFull ? options.poolFullStatus : wire.status;
  const headers: Record<string, string> = { 'x-ms-error-code': wire.code };
  if (status === 401) headers['www-authenticate'] = 'Bearer realm="sandpool"';
  if (status === 429 || status === 503) {
    const seconds = wire.details?.retryAfterSeconds;
    headers['retry-after'] = String(typeof seconds === 'number' ? seconds : 1);
  }
  if (options.form === 'e2b') {
    // E2B's body; its SDKs read `code` (the status) to tell a missing sandbox from a failure.
    const sandboxId = wire.details?.sandboxId;
    return {
      status,
      code: wire.code,
      headers,
      body: {
        code: status,
        message: wire.message,
        ...(typeof sandboxId === 'string' && { sandboxId }),
        error_code: wire.code,
      },
    };
  }
  if (options.form === 'connect') {
    return {
      status,
      code: wire.code,
      headers,
      body: { code: CONNECT_CODES[status] ?? 'internal', message: wire.message },
    };
  }
  return {
    status,
    code: wire.code,
    headers,
    body: {
      error: {
        code: wire.code,
        message: wire.message,
        ...(wire.target !== undefined && { target: wire.target }),
        ...(wire.details !== undefined && { additionalInfo: [{ type: 'Details', info: wire.details }] }),
      },
    },
  };
}

/**
 * The front door a request no route took came to, by its path (after api/e2b/sandbox-routing's
 * rewrite): E2B's control plane and a sandbox's own paths answer in E2B's body, the rest in Azure's.
 */
export function wireOfPath(url: string): Wire {
  return /^\/(e2b\/sandbox|v2\/sandboxes|sandboxes|files)(\/|\?|$)/.test(url) ? 'e2b' : 'azure';
}

export function registerErrorHandling(app: FastifyInstance, options: { poolFullStatus: 429 | 404 }): void {
  app.setErrorHandler((error, request, reply) => {
    const rendered = renderError(error, {
      ...options,
      form: request.routeOptions.config.wire ?? wireOfPath(request.url),
    });
    if (rendered.status >= 500) request.log.error({ err: error, code: rendered.code }, 'request failed');
    else request.log.info({ code: rendered.code, status: rendered.status }, 'request refused');
    return reply.status(rendered.status).headers(rendered.headers).send(rendered.body);
  });
  app.setNotFoundHandler((request) => {
    throw new AppError(
      ErrorCode.RouteNotFound,
      `No route serves ${request.method} ${request.url.split('?')[0] ?? ''}.`,
    );
  });
}

/**
 * Writes an error to a response Fastify no longer owns (a hijacked one, as the proxies' are): the
 * rendered error while no head went, else the connection is cut, since a clean end would pass a
 * partial answer for a whole one.
 */
export function writeResponseError(
  res: ServerResponse,
  error: unknown,
  options: { poolFullStatus: 429 | 404; form?: Wire },
): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const rendered = renderError(error, options);
  res.writeHead(rendered.status, { ...rendered.headers, 'content-type': 'application/json; charset=utf-8' });
  res.end(JSON.stringify(rendered.body));
}

/**
 * Answers what Node's HTTP parser refuses before any route sees it (headers too large, a client too
 * slow, bytes that are not HTTP) in the same shape, then closes the connection as Node would.
 */
export function answerClientError(error: NodeJS.ErrnoException, socket: Duplex): void {
  if (error.code === 'ECONNRESET' || socket.destroyed) return;
  const [code, message] =
    error.code === 'HPE_HEADER_OVERFLOW'
      ? [ErrorCode.RequestHeadersTooLarge, 'The request line and headers exceed 16 KiB.']
      : error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? [ErrorCode.RequestTimeout, 'The request did not arrive in time.']
        : [ErrorCode.InvalidRequestContent, 'The request is not valid HTTP/1.1.'];
  // No pool is involved, so the pool-full status option cannot apply.
  writeSocketError(socket, new AppError(code, message), { poolFullStatus: 429 });
  socket.destroy(error);
}

/**
 * Writes an error as a whole HTTP response straight to a socket no HTTP response object owns (one
 * the parser refused, an upgrade refused before any tunnel) and closes the connection after it.
 */
export function writeSocketError(
  socket: Duplex,
  error: unknown,
  options: { poolFullStatus: 429 | 404 },
): void {
  const rendered = renderError(error, options);
  const body = JSON.stringify(rendered.body);
  const headers = Object.entries({
    ...rendered.headers,
    'content-type': 'application/json',
    'content-length': String(Buffer.byteLength(body)),
    connection: 'close',
  }).map(([name, value]) => `${name}: ${value}\r\n`);
  if (socket.writable) {
    socket.end(
      `HTTP/1.1 ${rendered.status} ${STATUS_CODES[rendered.status]}\r\n${headers.join('')}\r\n${body}`,
    );
  }
}
