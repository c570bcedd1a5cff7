/**
 * @module api/e2b/interpreter-routes
 * E2B's code interpreter (port 49999, taken below SANDBOX_PREFIX): `POST /execute` runs code in one
 * of the sandbox's contexts and streams it as NDJSON lines (stdout and stderr as they are written,
 * each result as it is displayed, the error, the execution count, the end); the contexts routes make,
 * list, restart and remove them. A run's head waits for its first line, so a refusal (an unknown
 * context) is still an HTTP error; a client that leaves interrupts its code, as E2B's server does.
 */

import type { FastifyInstance } from 'fastify';

import { AppError, ErrorCode } from '../../errors.js';
import type { E2bSandboxes, RichResult } from '../../pool/e2b-sandboxes.js';
import { interpreterRoutes } from '../schemas/e2b.js';
import { field, isRecord } from '../wire.js';
import { reachSandbox, type SandboxReachDeps } from './sandbox-reach.js';
import { INTERPRETER_PORT, SANDBOX_PREFIX } from './sandbox-routing.js';

/** An idle run says it is alive this often, as E2B's server does. */
const KEEPALIVE_MS = 5_000;
/** The languages a Python sandbox's contexts speak, as E2B's SDKs name them. */
const PYTHON = new Set(['python', 'python3']);

export interface InterpreterRoutesDeps extends SandboxReachDeps {
  sandboxes: E2bSandboxes;
  now: () => number;
}

function optionalString(body: Record<string, unknown>, name: string): string | undefined {
  const value = field(body, name);
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string')
    throw new AppError(ErrorCode.InvalidParameter, `${name} must be a string`, { target: name });
  return value;
}

function checkLanguage(language: string | undefined): void {
  if (language !== undefined && !PYTHON.has(language.toLowerCase())) {
    throw new AppError(
      ErrorCode.NotSupported,
      `language ${language} is not supported by this sandbox: its template runs Python`,
      { target: 'language' },
    );
  }
}

export function registerInterpreterRoutes(app: FastifyInstance, deps: InterpreterRoutesDeps): void {
  const prefix = `${SANDBOX_PREFIX}/${INTERPRETER_PORT}`;
  const { sandboxes } = deps;

  app.post(`${prefix}/execute`, interpreterRoutes.execute, async (request, reply) => {
    const body = isRecord(request.body) ? request.body : {};
    const code = field(body, 'code');
    if (typeof code !== 'string')
      throw new AppError(ErrorCode.InvalidParameter, 'code is required', { target: 'code' });
    const context = optionalString(body, 'context_id');
    const language = optionalString(body, 'language');
    if (context !== undefined && language !== undefined) {
      throw new AppError(ErrorCode.InvalidParameter, 'name a context or a language, not both', {
        target: 'context_id',
      });
    }
    checkLanguage(language);
    const env = field(body, 'env_vars') ?? {};
    if (!isRecord(env) || !Object.values(env).every((value) => typeof value === 'string')) {
      throw new AppError(ErrorCode.InvalidParameter, 'env_vars must map names to strings', {
        target: 'env_vars',
      });
    }
    const reached = await reachSandbox(deps, request, reply);
    if (!reached) return reply;

    const response = reply.raw;
    // The head goes with the first line, so an error before any is an ordinary error answer.
    const stream = { started: false, lastLine: Date.now() };
    const line = (message: Record<string, unknown>) => {
      if (!stream.started) {
        reply.hijack();
        response.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' });
        stream.started = true;
      }
      stream.lastLine = Date.now();
      response.write(`${JSON.stringify(message)}\n`);
    };
    const abandoned = new AbortController();
    response.once('close', () => {
      if (!response.writableFinished) abandoned.abort();
    });
    const keepalive = setInterval(() => {
      if (stream.started && Date.now() - stream.lastLine >= KEEPALIVE_MS) line({ type: 'keepalive' });
    }, KEEPALIVE_MS);
    const timestamp = () => new Date(deps.now()).toISOString();
    let streamed = 0;
    try {
      const result = await sandboxes.runCode(reached.manager, reached.session, {
        code,
        context,
        env: env as Record<string, string>,
        signal: abandoned.signal,
        onOutput: (stream, text) => line({ type: stream, text, timestamp: timestamp() }),
        onResult: (found: RichResult) => {
          streamed++;
          line(found);
        },
      });
      for (const found of (result.results ?? []).slice(streamed)) line(found);
      if (result.error) {
        line({
          type: 'error',
          name: result.error.name,
          value: result.error.message,
          traceback: result.error.traceback,
        });
      }
      line({ type: 'number_of_executions', execution_count: result.executionCount ?? 0 });
      line({ type: 'end_of_execution' });
      response.end();
    } catch (error) {
      // Once lines went, a failure can only cut the stream: a reset, never a clean end.
      if (!stream.started) throw error;
      response.destroy();
    } finally {
      clearInterval(keepalive);
    }
    return reply;
  });

  app.post(`${prefix}/contexts`, interpreterRoutes.createContext, async (request, reply) => {
    const body = isRecord(request.body) ? request.body : {};
    const language = optionalString(body, 'language') ?? 'python';
    checkLanguage(language);
    const cwd = optionalString(body, 'cwd');
    const reached = await reachSandbox(deps, request, reply);
    if (!reached) return reply;
    const answer = await sandboxes.contexts(reached.manager, reached.session, {
      op: 'context.create',
      language: 'python',
      ...(cwd !== undefined && { cwd }),
    });
    return answer.context;
  });

  app.get(`${prefix}/contexts`, interpreterRoutes.listContexts, async (request, reply) => {
    const reached = await reachSandbox(deps, request, reply);
    if (!reached) return reply;
    return (await sandboxes.contexts(reached.manager, reached.session, { op: 'context.list' })).contexts;
  });

  app.delete(`${prefix}/contexts/:contextId`, interpreterRoutes.removeContext, async (request, reply) => {
    const { contextId } = request.params as { contextId: string };
    const reached = await reachSandbox(deps, request, reply);
    if (!reached) return reply;
    await sandboxes.contexts(reached.manager, reached.session, { op: 'context.remove', context: contextId });
    return reply.status(200).send();
  });

  app.post(
    `${prefix}/contexts/:contextId/restart`,
    interpreterRoutes.restartContext,
    async (request, reply) => {
      const { contextId } = request.params as { contextId: string };
      const reached = await reachSandbox(deps, request, reply);
      if (!reached) return reply;
      await sandboxes.contexts(reached.manager, reached.session, {
        op: 'context.restart',
        context: contextId,
      });
      return reply.status(200).send();
    },
  );

  app.get(`${prefix}/health`, interpreterRoutes.health, async (request, reply) => {
    const reached = await reachSandbox(deps, request, reply);
    if (!reached) return reply;
    return reply.type('text/plain').send('OK');
  });
}
