/**
 * @module pool/executions
 * Running code in a pool's sessions, the use case behind every execution route: idempotency by
 * operation id (a retry with the same id gets the first run's record), serialized runs per
 * session, the record bounded field by field and stored, the execution counted in the pool's
 * metrics, async runs finished in the background, and runs a dead server left behind marked as lost.
 * The API layer parses requests and renders records; it never touches a session.
 */

import { createHash } from 'node:crypto';

import type { Logger } from 'pino';

import { AppError, ErrorCode } from '../errors.js';
import type { AgentRequest, AgentResult, Language } from '../interpreter/agent-client.js';
import type { ImageOutput } from '../interpreter/protocol.js';
import type { ExecutionRow, JsonObject, Store } from '../store/store.js';
import type { PoolManager } from './pool-manager.js';
import type { Claimed } from './sessions.js';

/** The most characters a stream or value is cut to, whatever the request asks. */
export const MAX_OUTPUT_CHARS = 1_000_000;

/** An error's message: the exception's name and text, never a stream's worth. */
const MAX_ERROR_MESSAGE_CHARS = 4096;
/** Images an execution may return, and their base64 text together. */
const MAX_IMAGES = 16;
const MAX_IMAGE_CHARS = 8 * 1024 * 1024;

// So one execution's stored record holds at most: stdout, stderr and the value each at
// outputStreamsMaxLength characters (1,000,000 at most), the error message 4 KiB, and images 8 MiB of
// base64 in at most 16. The agent runs inside the sandbox and is not trusted to keep any of these.

export interface ExecutionRequest {
  /** Python code, or a command line for a Shell pool. */
  code: string;
  language: Language;
  executionType: 'Synchronous' | 'Asynchronous';
  timeoutSeconds: number;
  outputStreamsMaxLength: number;
}

/** What an execution produced, independent of any API generation. */
export interface ExecutionResult {
  id: string;
  identifier: string;
  executionType: 'Synchronous' | 'Asynchronous';
  status: 'Running' | 'Succeeded' | 'Failed';
  stdout: string;
  stderr: string;
  /** The value of the last expression. */
  value: string | number | boolean | null;
  images: ImageOutput[];
  executionTimeInMilliseconds: number;
  outputStreamsMaxLength: number;
  error: { code: string; message: string } | null;
  /** A shell command's exit status; null for Python, and for a command that was stopped or never started. */
  exitCode: number | null;
  /** The fields cut to their bound (`stdout`, `stderr`, `executionResult`, `error`, `images`); absent when none. */
  truncated?: string[];
}

/** What a run returns: the record, and how long its code ran. */
export interface ExecutionRun {
  record: ExecutionResult;
  /** Milliseconds spent running the code (sync runs). */
  executionMs: number;
}

/** The record of what the agent answered, every field cut to its bound and the cut ones named. */
function record(
  base: Pick<ExecutionResult, 'id' | 'identifier' | 'executionType' | 'outputStreamsMaxLength'>,
  outcome: AgentResult,
): ExecutionResult {
  const truncated: string[] = [];
  const cut = (field: string, text: string, max: number, alreadyCut = false) => {
    if (alreadyCut || text.length > max) truncated.push(field);
    return text.length > max ? text.slice(0, max) : text;
  };
  const max = base.outputStreamsMaxLength;
  let error: ExecutionResult['error'] = null;
  let stderr = outcome.stderr;
  if (outcome.timedOut) {
    error = {
      code: 'ExecutionTimeout',
      message: 'the execution ran past timeoutInSeconds and was interrupted',
    };
  } else if (outcome.error) {
    const message = `${outcome.error.name}: ${outcome.error.message}`;
    error = { code: 'ExecutionError', message: cut('error', message, MAX_ERROR_MESSAGE_CHARS) };
    // Clients show stderr to users and models; the traceback belongs there, as in Jupyter.
    stderr += outcome.error.traceback;
  }
  let imageChars = 0;
  const images = outcome.images.filter((image, index) => {
    imageChars += image.base64_data.length;
    return index < MAX_IMAGES && imageChars <= MAX_IMAGE_CHARS;
  });
  if (images.length < outcome.images.length) truncated.push('images');
  const value =
    typeof outcome.result === 'string' ? cut('executionResult', outcome.result, max) : outcome.result;
  return {
    ...base,
    status: outcome.status === 'succeeded' && !outcome.timedOut ? 'Succeeded' : 'Failed',
    stdout: cut('stdout', outcome.stdout, max, outcome.stdoutTruncated),
    stderr: cut('stderr', stderr, max, outcome.stderrTruncated),
    value,
    images,
    executionTimeInMilliseconds: Math.round(outcome.durationMs),
    error,
    exitCode: outcome.exitCode ?? null,
    ...(truncated.length > 0 && { truncated }),
  };
}

/**
 * Passes on at most `max` characters of each stream: the agent streams within the cap already, but
 * it runs inside the sandbox and is not trusted to.
 */
function bounded(
  onOutput: NonNullable<AgentRequest['onOutput']>,
  max: number,
): NonNullable<AgentRequest['onOutput']> {
  const sent = { stdout: 0, stderr: 0 };
  return (stream, text) => {
    const piece = text.slice(0, Math.max(0, max - sent[stream]));
    sent[stream] += piece.length;
    if (piece) onOutput(stream, piece);
  };
}

/**
 * Passes on the images the code shows while it runs, within the bounds the record keeps (count and
 * size): the agent is not trusted to.
 */
function boundedImages(onImage: NonNullable<AgentRequest['onImage']>): NonNullable<AgentRequest['onImage']> {
  let count = 0;
  let chars = 0;
  return (image) => {
    count++;
    chars += image.base64_data.length;
    if (count <= MAX_IMAGES && chars <= MAX_IMAGE_CHARS) onImage(image);
  };
}

/** A record with no answer from the session in it: a run still under way, or one that never got one. */
function withoutOutput(
  base: Pick<ExecutionResult, 'id' | 'identifier' | 'executionType' | 'outputStreamsMaxLength'>,
  status: 'Running' | 'Failed',
  error: ExecutionResult['error'],
  executionTimeInMilliseconds = 0,
): ExecutionResult {
  return {
    ...base,
    status,
    stdout: '',
    stderr: '',
    value: null,
    images: [],
    executionTimeInMilliseconds,
    error,
    exitCode: null,
  };
}

export class Executions {
  constructor(private readonly deps: { store: Store; log: Logger; now: () => number }) {}

  /**
   * Runs an execution in a session the request reached, and stores it. Sync runs resolve with the
   * final record; async runs resolve at once with a `Running` record, and store the final one when
   * the run ends. A retry that names the operation id of a stored run gets that run's record from
   * {@link get} instead, before it reaches a session.
   */
  async run(
    manager: PoolManager,
    input: {
      reached: Claimed;
      operationId: string;
      principal: string;
      request: ExecutionRequest;
      /** A sync run's output as it is written (within outputStreamsMaxLength), ahead of its record. */
      onOutput?: AgentRequest['onOutput'];
      /** A sync run's images as its code shows them, ahead of its record (which has them first). */
      onImage?: AgentRequest['onImage'];
    },
  ): Promise<ExecutionRun> {
    const { reached, operationId, request } = input;
    const { session } = reached;
    const identifier = session.identifier;
    const base = {
      id: operationId,
      identifier,
      executionType: request.executionType,
      outputStreamsMaxLength: request.outputStreamsMaxLength,
    };
    const row: ExecutionRow = {
      id: operationId,
      poolId: manager.id,
      identifier,
      sessionId: '',
      status: 'Running',
      principal: input.principal,
      codeBytes: Buffer.byteLength(request.code),
      codeSha256: createHash('sha256').update(request.code).digest('hex'),
      outcome: {},
      createdAt: new Date(this.deps.now()).toISOString(),
      endedAt: null,
    };
    // A run that ends after its pool was deleted has nowhere to go: the pool's records are gone.
    const save = async (final: ExecutionResult, sessionId: string) => {
      if (manager.isForgotten) return;
      await this.deps.store.putExecution({
        ...row,
        sessionId,
        status: final.status,
        outcome: final as unknown as JsonObject,
        endedAt: final.status === 'Running' ? null : new Date(this.deps.now()).toISOString(),
      });
    };

    const execute = async () => {
      const started = performance.now();
      let final: ExecutionResult;
      try {
        const outcome = await manager.execute(session, {
          code: request.code,
          language: request.language,
          timeoutMs: request.timeoutSeconds * 1000,
          maxOutputChars: request.outputStreamsMaxLength,
          ...(input.onOutput && { onOutput: bounded(input.onOutput, request.outputStreamsMaxLength) }),
          ...(input.onImage && { onImage: boundedImages(input.onImage) }),
        });
        final = record(base, outcome);
      } catch (error) {
        if (!(error instanceof AppError) || error.code !== ErrorCode.SessionLost) throw error;
        final = withoutOutput(
          base,
          'Failed',
          { code: ErrorCode.SessionLost, message: error.message },
          Math.round(performance.now() - started),
        );
      }
      const executionMs = performance.now() - started;
      await save(final, session.id);
      return { final, executionMs };
    };

    if (request.executionType === 'Synchronous') {
      const { final, executionMs } = await execute();
      return { record: final, executionMs };
    }
    const running = withoutOutput(base, 'Running', null);
    await save(running, session.id);
    execute().catch(async (error: unknown) => {
      this.deps.log.error({ err: error, operationId }, 'async execution failed');
      const message = error instanceof Error ? error.message : String(error);
      const code = error instanceof AppError ? error.code : 'InternalServerError';
      await save(withoutOutput(base, 'Failed', { code, message }), session.id).catch(() => undefined);
    });
    return { record: running, executionMs: 0 };
  }

  /** The stored record of an execution of the identifier in the pool, if there is one. */
  async get(manager: PoolManager, identifier: string, id: string): Promise<ExecutionResult | undefined> {
    const row = await this.deps.store.getExecution(manager.id, identifier, id);
    return row && (row.outcome as unknown as ExecutionResult);
  }

  /** Marks the executions that were running when the previous server process died as lost. */
  async failInterrupted(): Promise<void> {
    for (const row of await this.deps.store.listExecutions({ status: 'Running' })) {
      await this.deps.store.putExecution({
        ...row,
        status: 'Failed',
        outcome: {
          ...row.outcome,
          status: 'Failed',
          error: {
            code: 'ServerRestarted',
            message: 'the server restarted while this execution ran; its result is lost',
          },
        },
        endedAt: new Date(this.deps.now()).toISOString(),
      });
    }
  }
}
