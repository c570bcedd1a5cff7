/**
 * @module api/mcp/tool-run
 * How an MCP tool of either server runs code or a command line in a session (one this node holds, or
 * claims now): a synchronous execution with an id of its own, through the same use case as `POST
 * executions` (so its record, limits and metrics are alike), each stream cut at 100,000 characters,
 * and the HTTP API's default time limit for the language unless the call names one.
 */

import { randomUUID } from 'node:crypto';

import type { ExecutionResult, Executions } from '../../pool/executions.js';
import type { PoolManager } from '../../pool/pool-manager.js';
import { DEFAULT_TIMEOUT_SECONDS } from '../data/executions.js';

/** The pool type whose default time limit a language takes. */
const LANGUAGE_POOL = { python: 'PythonLTS', javascript: 'NodeLTS', bash: 'Shell' } as const;

/** Output a tool answers with, at most per stream (the HTTP API's default is 4096). */
const OUTPUT_CHARS = 100_000;

export async function runForTool(
  executions: Executions,
  manager: PoolManager,
  input: {
    identifier: string;
    principal: string;
    code: string;
    language: 'python' | 'javascript' | 'bash';
    timeoutInSeconds?: number | undefined;
  },
): Promise<ExecutionResult> {
  const { record } = await executions.run(manager, {
    reached: await manager.acquire(input.identifier),
    operationId: randomUUID(),
    principal: input.principal,
    request: {
      code: input.code,
      language: input.language,
      executionType: 'Synchronous',
      timeoutSeconds: input.timeoutInSeconds ?? DEFAULT_TIMEOUT_SECONDS[LANGUAGE_POOL[input.language]],
      outputStreamsMaxLength: OUTPUT_CHARS,
    },
  });
  return record;
}
