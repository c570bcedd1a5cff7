/**
 * @module api/data/executions
 * Executions on the wire: the request as clients send it (flat or wrapped in `properties`, enums in
 * any case) read into an {@link ExecutionRequest}, and the {@link ExecutionResult} the pool layer
 * made rendered as the current generation's `SessionCodeExecutionResource`, a Shell pool's
 * execution, or the legacy generations' envelopes.
 */

import { randomUUID } from 'node:crypto';

import { AppError, ErrorCode } from '../../errors.js';
import { MAX_OUTPUT_CHARS, type ExecutionResult, type ExecutionRequest } from '../../pool/executions.js';
import type { InterpreterType } from '../../pool/pool-spec.js';
import { field, isRecord, optionalEnum, optionalInteger, optionalString, type JsonRecord } from '../wire.js';

const MAX_TIMEOUT_SECONDS = 220;
/** The container-internal defaults the reference gives: Python 120 s, Shell 180 s (Node as Python). */
export const DEFAULT_TIMEOUT_SECONDS: Record<InterpreterType, number> = {
  PythonLTS: 120,
  NodeLTS: 120,
  Shell: 180,
};
/** GNU timeout's status, reported for a command stopped at its time limit. */
const TIMED_OUT_EXIT_CODE = 124;
/** A shell's status for a command it could not run. */
const COMMAND_NOT_RUN_EXIT_CODE = 127;
const DEFAULT_OUTPUT_CHARS = 4096;
const MAX_CODE_CHARS = 4 * 1024 * 1024;
const OPERATION_ID = /^[A-Za-z0-9._-]{1,128}$/;

/**
 * Reads an execution request for a pool of `containerType`. Code-interpreter pools take Python (or,
 * for NodeLTS, JavaScript) in `codeField` (`code` today, `pythonCode` in the v0 generation); Shell pools take `shellCommand` and
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
        : `shellCommand is for Shell pools; send ${containerType === 'NodeLTS' ? 'JavaScript' : 'Python'} in code`,
      { target: other },
    );
  }
  const rawCode = optionalString(field(request, expected), expected, MAX_CODE_CHARS);
  if (rawCode === undefined) {
    throw new AppError(ErrorCode.InvalidParameter, `${expected} is required`, { target: expected });
  }
  const language: ExecutionRequest['language'] = shell
    ? (optionalEnum(field(request, 'shellType'), 'shellType', ['bash', 'sh'] as const) ?? 'bash')
    : containerType === 'NodeLTS'
      ? 'javascript'
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

/** The value clients read as `executionResult`: the last expression, else the first image. */
function executionResult(record: ExecutionResult): unknown {
  if (record.value !== null) return record.value;
  return record.images[0] ?? null;
}

/** The fields the legacy generations return, in their `Success`/`Failure` words. */
function legacyFields(record: ExecutionResult): JsonRecord {
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
export function legacyExecutionResource(record: ExecutionResult): JsonRecord {
  return { $id: '1', properties: { $id: '2', ...legacyFields(record) } };
}

/** The pre-release generation's (`python/execute`) answer: the fields at the top level. */
export function preReleaseExecutionResource(record: ExecutionResult): JsonRecord {
  return legacyFields(record);
}

/** The current generation's `SessionCodeExecutionResource`. */
export function executionResource(record: ExecutionResult): JsonRecord {
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
export function shellExecutionResource(record: ExecutionResult): JsonRecord {
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
): (record: ExecutionResult) => JsonRecord {
  return containerType === 'Shell' ? shellExecutionResource : executionResource;
}
