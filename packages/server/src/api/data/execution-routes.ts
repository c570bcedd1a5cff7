/**
 * @module api/data/execution-routes
 * `POST executions` (sync answers 200 with the result, async 202 with `Operation-Location`) and
 * `GET executions/{id}`.
 */

import { randomUUID } from 'node:crypto';

import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

import { AppError, ErrorCode } from '../../errors.js';
import type { ExecutionResult, Executions } from '../../pool/executions.js';
import type { PoolService } from '../../pool/pool-service.js';
import type { SessionSteps } from '../request-path.js';
import { field, isRecord, type JsonRecord } from '../wire.js';
import { ExecutionEventStream } from './execution-stream.js';
import { dataRoutes, legacyRoutes } from '../schemas/data.js';
import {
  executionRendererFor,
  legacyExecutionResource,
  preReleaseExecutionResource,
  operationIdFrom,
  parseExecutionRequest,
} from './executions.js';
import { POOL_ENDPOINT, poolFor, requireIdentifier, sessionHeaders } from './pool-endpoint.js';

export function registerExecutionRoutes(
  app: FastifyInstance,
  deps: {
    pools: PoolService;
    executions: Executions;
    sessions: SessionSteps;
    publicUrl: () => string;
  },
): void {
  app.post(`${POOL_ENDPOINT}/executions`, dataRoutes.execute, async (request, reply) => {
    const receivedAt = performance.now();
    const { manager, query } = await poolFor(deps.pools, request);
    const identifier = requireIdentifier(query.identifier);
    const executionRequest = parseExecutionRequest(request.body, manager.interpreterType);
    const callerChoseId = request.headers['operation-id'] !== undefined;
    const operationId = operationIdFrom(request.headers['operation-id']);
    const render = executionRendererFor(manager.interpreterType);
    // A retry naming a stored run's operation-id gets that run's record, wherever it ran.
    const stored = callerChoseId ? await deps.executions.get(manager, identifier, operationId) : undefined;
    if (stored) return reply.status(stored.status === 'Running' ? 202 : 200).send(render(stored));
    const claimed = await deps.sessions.claim(request, reply, { manager, identifier });
    if (!claimed) return reply;
    const location = `${deps.publicUrl()}${request.url.split('?')[0] ?? ''}/${encodeURIComponent(operationId)}?api-version=${query['api-version'] ?? ''}&identifier=${encodeURIComponent(identifier)}`;
    void reply.header('operation-id', operationId).header('operation-location', location);
    const stream =
      executionRequest.executionType === 'Synchronous' && ExecutionEventStream.wanted(request.headers.accept)
        ? new ExecutionEventStream(reply)
        : undefined;
    if (stream) {
      sessionHeaders(reply, claimed, { receivedAt });
      stream.open();
    }
    const run = await deps.executions
      .run(manager, {
        reached: claimed,
        operationId,
        principal: request.principal.id,
        request: executionRequest,
        ...(stream && {
          onOutput: (name, text) => stream.output(name, text),
          onImage: (image) => stream.image(image),
        }),
      })
      .catch((error: unknown) => {
        if (!stream) throw error;
        request.log.error({ err: error }, 'streamed execution failed');
        stream.fail(error);
        return undefined;
      });
    if (!run) return reply;
    if (!stream) sessionHeaders(reply, claimed, { receivedAt, executionMs: run.executionMs });
    request.log.info(
      {
        operation: 'code.execute',
        pool: manager.name,
        status: run.record.status,
        codeBytes: Buffer.byteLength(executionRequest.code),
      },
      'code.execute',
    );
    const body = render(run.record);
    if (stream) {
      stream.finish(run.record.images, body);
      return reply;
    }
    return reply.status(run.record.status === 'Running' ? 202 : 200).send(body);
  });

  /**
   * The legacy generations: always synchronous, `code` (or `pythonCode`) inside `properties`, and
   * the identifier in the query or, for pre-release clients, in the body.
   */
  const legacyExecute =
    (codeField: 'code' | 'pythonCode', render: (record: ExecutionResult) => JsonRecord) =>
    async (request: FastifyRequest, reply: FastifyReply) => {
      const receivedAt = performance.now();
      const { manager, query } = await poolFor(deps.pools, request);
      if (manager.interpreterType !== 'PythonLTS') {
        throw new AppError(
          ErrorCode.InvalidParameter,
          `session pool ${manager.name} is a ${manager.interpreterType} pool; send its commands to POST executions`,
        );
      }
      const properties = isRecord(request.body) ? field(request.body, 'properties') : undefined;
      const identifier = requireIdentifier(
        query.identifier ?? (isRecord(properties) ? field(properties, 'identifier') : undefined),
      );
      const executionRequest = {
        ...parseExecutionRequest(request.body, 'PythonLTS', codeField),
        executionType: 'Synchronous' as const,
      };
      const claimed = await deps.sessions.claim(request, reply, { manager, identifier });
      if (!claimed) return reply;
      const run = await deps.executions.run(manager, {
        reached: claimed,
        operationId: randomUUID(),
        principal: request.principal.id,
        request: executionRequest,
      });
      sessionHeaders(reply, claimed, { receivedAt, executionMs: run.executionMs });
      return reply.status(200).send(render(run.record));
    };
  app.post(
    `${POOL_ENDPOINT}/code/execute`,
    legacyRoutes.codeExecute,
    legacyExecute('code', legacyExecutionResource),
  );
  app.post(
    `${POOL_ENDPOINT}/python/execute`,
    legacyRoutes.pythonExecute,
    legacyExecute('pythonCode', preReleaseExecutionResource),
  );

  app.get(`${POOL_ENDPOINT}/executions/:executionId`, dataRoutes.getExecution, async (request, reply) => {
    const { manager, query } = await poolFor(deps.pools, request);
    const identifier = requireIdentifier(query.identifier);
    const { executionId } = request.params as { executionId: string };
    // Read where its session is: a run still under way is stored when it ends, there.
    if (!(await deps.sessions.find(request, reply, { manager, identifier }))) return reply;
    const record = await deps.executions.get(manager, identifier, executionId);
    if (!record) {
      throw new AppError(
        ErrorCode.ExecutionNotFound,
        `No execution ${executionId} exists for this identifier in this pool.`,
      );
    }
    return executionRendererFor(manager.interpreterType)(record);
  });
}
