/**
 * @module api/data/executions
 * Code executions in a session: the request as clients send it (flat or wrapped in `properties`,
 * enums in any case), the run itself (serialized per session, recorded in the store, sync or async),
 * and the record rendered as the current generation's `SessionCodeExecutionResource`. The legacy
 * generations render the same {@link ExecutionRecord} in their own envelopes.
 */

import { createHash, randomUUID } from 'node:crypto';

import type { Logger } from 'pino';

import { AppError, ErrorCode } from '../../errors.js';
import type { ExecutionOutcome, Language } from '../../interpreter/agent-client.js';
import type { ImageOutput } from '../../interpreter/protocol.js';
import type { ExecutionStatus, Metrics } from '../../observability/metrics.js';
import type { Allocation, PoolManager, Session } from '../../pool/pool-manager.js';
import type { InterpreterType } from '../../pool/pool-spec.js';
import type { ExecutionRow, JsonObject, Store } from '../../store/store.js';
import { field, isRecord, optionalEnum, optionalInteger, optionalString, type JsonRecord } from '../wire.js';

const MAX_TIMEOUT_SECONDS = 220;
/** The container-internal defaults the reference gives: Python 120 s, Shell 180 s. */
const DEFAULT_TIMEOUT_SECONDS: Record<InterpreterType, number> = { PythonLTS: 120, Shell: 180 };
/** GNU timeout's status, reported for a command stopped at its time limit. */
const TIMED_OUT_EXIT_CODE = 124;
/** A shell's status for a command it could not run. */
const COMMAND_NOT_RUN_EXIT_CODE = 127;
const DEFAULT_OUTPUT_CHARS = 4096;
const MAX_OUTPUT_CHARS = 1_000_000;
const MAX_CODE_CHARS = 4 * 1024 * 1024;
const OPERATION_ID = /^[A-Za-z0-9._-]{1,128}$/;
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
export interface ExecutionRecord {
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

/**
 * Reads an execution request for a pool of `containerType`. Code-interpreter pools take Python in
 * `codeField` (`code` today, `pythonCode` in the v0 generation); Shell pools take `shellCommand` and
 * an optional `shellType` (`bash` or `sh`).
 */
export function parseExecutionRequest(
  body: unknown,
  containerType: InterpreterType,
  codeField = 'code',
): ExecutionRequest {
  if (!isRecord(body)) {
    throw new AppError(
      ErrorCode.InvalidRequestContent,
      'The request body must be a JSON object with the code to run.',
    );
  }
  // The CLI and some SDKs wrap the fields in `properties`, even on /executions.
  const wrapped = field(body, 'properties');
  const request: JsonRecord = isRecord(wrapped) ? { ...body, ...wrapped } : body;
  const shell = containerType === 'Shell';
  const [expected, other] = shell ? ['shellCommand', codeField] : [codeField, 'shellCommand'];
  if (field(request, other) !== undefined && field(request, expected) === undefined) {
    throw new AppError(
      ErrorCode.InvalidParameter,
      shell
        ? `this is a Shell pool: send the command line in shellCommand, not ${other}`
        : 'shellCommand is for Shell pools; send Python in code',
      { target: other },
    );
  }
  const rawCode = optionalString(field(request, expected), expected, MAX_CODE_CHARS);
  if (rawCode === undefined) {
    throw new AppError(ErrorCode.InvalidParameter, `${expected} is required`, { target: expected });
  }
  const language: Language = shell
    ? (optionalEnum(field(request, 'shellType'), 'shellType', ['bash', 'sh'] as const) ?? 'bash')
    : 'python';
  const inputType =
    optionalEnum(field(request, 'codeInputType'), 'codeInputType', [
      'Inline',
      'InlineBase64',
      'InlineText',
    ] as const) ?? 'Inline';
  let code = rawCode;
  if (inputType === 'InlineBase64') {
    if (!/^[A-Za-z0-9+/\r\n]*={0,2}\s*$/.test(rawCode)) {
      throw new AppError(ErrorCode.InvalidParameter, `${expected} is not valid base64`, { target: expected });
    }
    code = Buffer.from(rawCode, 'base64').toString('utf8');
  }
  return {
    code,
    language,
    executionType:
      optionalEnum(field(request, 'executionType'), 'executionType', [
        'Synchronous',
        'Asynchronous',
      ] as const) ?? 'Synchronous',
    timeoutSeconds:
      optionalInteger(field(request, 'timeoutInSeconds'), 'timeoutInSeconds', {
        min: 1,
        max: MAX_TIMEOUT_SECONDS,
      }) ?? DEFAULT_TIMEOUT_SECONDS[containerType],
    outputStreamsMaxLength:
      optionalInteger(field(request, 'outputStreamsMaxLength'), 'outputStreamsMaxLength', {
        min: 1,
        max: MAX_OUTPUT_CHARS,
      }) ?? DEFAULT_OUTPUT_CHARS,
  };
}

export function operationIdFrom(header: unknown): string {
  if (header === undefined || header === '') return randomUUID();
  if (typeof header !== 'string' || !OPERATION_ID.test(header)) {
    throw new AppError(
      ErrorCode.InvalidParameter,
      'the operation-id header must be 1 to 128 letters, digits, dots, dashes or underscores',
      { target: 'operation-id' },
    );
  }
  return header;
}

/** The record of what the agent answered, every field cut to its bound and the cut ones named. */
function record(
  base: Pick<ExecutionRecord, 'id' | 'identifier' | 'executionType' | 'outputStreamsMaxLength'>,
  outcome: ExecutionOutcome,
): ExecutionRecord {
  const truncated: string[] = [];
  const cut = (field: string, text: string, max: number, alreadyCut = false) => {
    if (alreadyCut || text.length > max) truncated.push(field);
    return text.length > max ? text.slice(0, max) : text;
  };
  const max = base.outputStreamsMaxLength;
  let error: ExecutionRecord['error'] = null;
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

export interface ExecutionRun {
  record: ExecutionRecord;
  session: Session | undefined;
  allocation: Allocation | undefined;
  /** Milliseconds spent running the code (sync runs). */
  executionMs: number;
}

/**
 * Runs an execution and stores it. Sync runs resolve with the final record; async runs resolve at
 * once with a `Running` record, and the final one is stored when the run ends.
 */
/** The bounded status an execution counts under in the metrics. */
function metricStatus(record: ExecutionRecord): ExecutionStatus {
  if (record.error?.code === 'ExecutionTimeout') return 'timeout';
  if (record.error?.code === ErrorCode.SessionLost) return 'lost';
  return record.status === 'Succeeded' ? 'succeeded' : 'failed';
}

export async function runExecution(
  deps: { store: Store; log: Logger; now: () => number; metrics: Metrics },
  manager: PoolManager,
  input: {
    identifier: string;
    operationId: string;
    /** The client sent the id (operation-id), so a retry may repeat it. */
    callerChoseId: boolean;
    principal: string;
    request: ExecutionRequest;
  },
): Promise<ExecutionRun> {
  const { identifier, operationId, request } = input;
  const existing = input.callerChoseId
    ? await deps.store.getExecution(manager.id, identifier, operationId)
    : undefined;
  if (existing) {
    // A retried request with the same operation-id gets the first run's record, not a second run.
    return {
      record: existing.outcome as unknown as ExecutionRecord,
      session: undefined,
      allocation: undefined,
      executionMs: 0,
    };
  }
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
    createdAt: new Date(deps.now()).toISOString(),
    endedAt: null,
  };
  // A run that ends after its pool was deleted has nowhere to go: the pool's records are gone.
  const save = async (final: ExecutionRecord, sessionId: string) => {
    if (manager.isForgotten) return;
    await deps.store.putExecution({
      ...row,
      sessionId,
      status: final.status === 'Running' ? 'Running' : final.status,
      outcome: final as unknown as JsonObject,
      endedAt: final.status === 'Running' ? null : new Date(deps.now()).toISOString(),
    });
  };

  const run = async () => {
    let executionStarted = 0;
    const result = await manager.withSession(
      identifier,
      async (session) => {
        executionStarted = performance.now();
        try {
          const outcome = await session.sandbox.execute({
            code: request.code,
            language: request.language,
            timeoutMs: request.timeoutSeconds * 1000,
            maxOutputChars: request.outputStreamsMaxLength,
          });
          return record(base, outcome);
        } catch (error) {
          if (!(error instanceof AppError) || error.code !== ErrorCode.SessionLost) throw error;
          return {
            ...base,
            status: 'Failed' as const,
            stdout: '',
            stderr: '',
            value: null,
            images: [],
            executionTimeInMilliseconds: Math.round(performance.now() - executionStarted),
            error: { code: ErrorCode.SessionLost, message: error.message },
            exitCode: null,
          };
        }
      },
      { serialize: true },
    );
    const executionMs = performance.now() - executionStarted;
    result.session.executions++;
    const status = metricStatus(result.value);
    deps.metrics.recordExecution(manager.metricLabel, manager.interpreterType, status, executionMs / 1000);
    await save(result.value, result.session.sandbox.id);
    return { record: result.value, session: result.session, allocation: result.allocation, executionMs };
  };

  if (request.executionType === 'Synchronous') return run();

  const running: ExecutionRecord = {
    ...base,
    status: 'Running',
    stdout: '',
    stderr: '',
    value: null,
    images: [],
    executionTimeInMilliseconds: 0,
    error: null,
    exitCode: null,
  };
  // Allocation errors (pool full, bad identifier) belong to the request, so they surface here.
  const { session, allocation } = await manager.acquire(identifier);
  await save(running, session.sandbox.id);
  run().catch(async (error: unknown) => {
    deps.log.error({ err: error, operationId }, 'async execution failed');
    const message = error instanceof Error ? error.message : String(error);
    await save(
      {
        ...running,
        status: 'Failed',
        error: { code: error instanceof AppError ? error.code : 'InternalServerError', message },
      },
      session.sandbox.id,
    ).catch(() => undefined);
  });
  return { record: running, session, allocation, executionMs: 0 };
}

/** The value clients read as `executionResult`: the last expression, else the first image. */
function executionResult(record: ExecutionRecord): unknown {
  if (record.value !== null) return record.value;
  return record.images[0] ?? null;
}

/** The fields the legacy generations return, in their `Success`/`Failure` words. */
function legacyFields(record: ExecutionRecord): JsonRecord {
  // Legacy clients read `result.type` when `result` is not a string (LlamaIndex TS throws on null),
  // so "no value" is the empty string there.
  const result = executionResult(record) ?? '';
  return {
    status: record.status === 'Succeeded' ? 'Success' : 'Failure',
    stdout: record.stdout,
    stderr: record.stderr,
    // Learn's tutorials read `executionResult`, LangChain, SK, AutoGen and LlamaIndex read `result`.
    result,
    executionResult: result,
    executionTimeInMilliseconds: record.executionTimeInMilliseconds,
    ...(record.error && { error: record.error }),
  };
}

/** The legacy generation's (`code/execute`) answer: `$id`-numbered `properties` envelope. */
export function legacyExecutionResource(record: ExecutionRecord): JsonRecord {
  return { $id: '1', properties: { $id: '2', ...legacyFields(record) } };
}

/** The pre-release generation's (`python/execute`) answer: the fields at the top level. */
export function preReleaseExecutionResource(record: ExecutionRecord): JsonRecord {
  return legacyFields(record);
}

/** The current generation's `SessionCodeExecutionResource`. */
export function executionResource(record: ExecutionRecord): JsonRecord {
  return {
    id: record.id,
    identifier: record.identifier,
    executionType: record.executionType,
    status: record.status,
    result:
      record.status === 'Running'
        ? null
        : {
            stdout: record.stdout,
            stderr: record.stderr,
            executionResult: executionResult(record),
            executionTimeInMilliseconds: record.executionTimeInMilliseconds,
            outputStreamsMaxLength: record.outputStreamsMaxLength,
            images: record.images,
            ...(record.truncated && { truncated: record.truncated }),
          },
    ...(record.error && { error: record.error }),
  };
}

/**
 * A Shell pool's answer: Azure puts the exit status in `status`, as a string ("0"), and clients
 * (LangChain's SessionsBashTool) read it with `int(status)`. A command stopped at its time limit
 * reports 124, as GNU timeout does; one that never started, 127, as a shell does.
 */
export function shellExecutionResource(record: ExecutionRecord): JsonRecord {
  const exitCode =
    record.exitCode ??
    (record.error?.code === 'ExecutionTimeout' ? TIMED_OUT_EXIT_CODE : COMMAND_NOT_RUN_EXIT_CODE);
  return {
    id: record.id,
    identifier: record.identifier,
    executionType: record.executionType,
    status: record.status === 'Running' ? 'Running' : String(exitCode),
    result:
      record.status === 'Running'
        ? null
        : {
            stdout: record.stdout,
            stderr: record.stderr,
            exitCode,
            executionTimeInMilliseconds: record.executionTimeInMilliseconds,
            outputStreamsMaxLength: record.outputStreamsMaxLength,
            ...(record.truncated && { truncated: record.truncated }),
          },
    ...(record.error && { error: record.error }),
  };
}

/** How a pool of `containerType` renders an execution on `POST executions` and `GET executions/{id}`. */
export function executionRendererFor(
  containerType: InterpreterType,
): (record: ExecutionRecord) => JsonRecord {
  return containerType === 'Shell' ? shellExecutionResource : executionResource;
}
