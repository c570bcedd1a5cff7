/**
 * @module api/data/process-routes
 * Background processes of a session (a Sandpool extension of the data plane): `POST processes`
 * starts one, `GET processes` lists them, `GET processes/{pid}/output` reads what they wrote from an
 * offset, `POST processes/{pid}/stdin` writes to them and `POST processes/{pid}/kill` signals them.
 * Each request reaches (or allocates) the identifier's session and resets its cooldown.
 */

import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

import type { PoolService } from '../../pool/pool-service.js';
import {
  onSessionProcesses,
  requireProcesses,
  type BackgroundProcess,
  type OutputSlice,
  type ProcessOutput,
  type ProcessSignal,
  type SessionProcesses,
} from '../../pool/session-processes.js';
import {
  field,
  invalid,
  optionalBoolean,
  optionalEnum,
  optionalInteger,
  optionalObject,
  optionalString,
  type JsonRecord,
} from '../wire.js';
import {
  DEFAULT_READ_CHARS,
  MAX_COMMAND_CHARS,
  MAX_OUTPUT_READ_CHARS,
  MAX_STDIN_CHARS,
  processRoutes,
} from '../schemas/processes.js';
import type { SessionSteps } from '../request-path.js';
import { POOL_ENDPOINT, poolFor, requireIdentifier, sessionHeaders, type Query } from './pool-endpoint.js';

const SHELLS = ['bash', 'sh'] as const;
const SIGNALS: readonly ProcessSignal[] = ['TERM', 'KILL', 'INT', 'HUP'];
/** Offsets count characters; beyond this no process has written. */
const OFFSETS = { min: 0, max: Number.MAX_SAFE_INTEGER };

/** The pid in the path: a process id inside the sandbox. */
function pidOf(request: FastifyRequest): number {
  const pid = (request.params as { pid: string }).pid;
  if (!/^[1-9][0-9]{0,9}$/.test(pid)) throw invalid('pid', 'must be a process id (a positive integer)');
  return Number(pid);
}

export function processResource(process: BackgroundProcess): JsonRecord {
  return {
    pid: process.pid,
    command: process.command,
    status: process.running ? 'Running' : 'Exited',
    exitCode: process.exitCode,
    startedAt: process.startedAt.toISOString(),
    endedAt: process.endedAt?.toISOString() ?? null,
  };
}

const sliceResource = (slice: OutputSlice): JsonRecord => ({
  text: slice.text,
  offset: slice.from,
  nextOffset: slice.next,
  length: slice.end,
});

/** A `ProcessOutput`: the process, and a part of each of its streams. */
export function outputResource(output: ProcessOutput): JsonRecord {
  return {
    process: processResource(output.process),
    stdout: sliceResource(output.stdout),
    stderr: sliceResource(output.stderr),
  };
}

export function registerProcessRoutes(
  app: FastifyInstance,
  deps: { pools: PoolService; sessions: SessionSteps },
): void {
  /**
   * The identifier's background processes: `parse` reads the request, then `work` runs on them with
   * the session headers set; undefined once the request went to the node that holds the session.
   */
  async function withProcesses<A, T>(
    request: FastifyRequest,
    reply: FastifyReply,
    parse: () => A,
    work: (processes: SessionProcesses, input: A) => Promise<T>,
  ): Promise<{ value: T } | undefined> {
    const receivedAt = performance.now();
    const { manager, query } = await poolFor(deps.pools, request);
    const identifier = requireIdentifier(query.identifier);
    const input = parse();
    requireProcesses(manager);
    const claimed = await deps.sessions.claim(request, reply, { manager, identifier });
    if (!claimed) return undefined;
    const value = await onSessionProcesses(manager, claimed.session, (processes) => work(processes, input));
    sessionHeaders(reply, claimed, { receivedAt });
    return { value };
  }

  app.post(`${POOL_ENDPOINT}/processes`, processRoutes.start, async (request, reply) => {
    const started = await withProcesses(
      request,
      reply,
      () => {
        const body = optionalObject(request.body, 'body') ?? {};
        const command = optionalString(field(body, 'command'), 'command', MAX_COMMAND_CHARS);
        if (!command) throw invalid('command', 'is required: the command line to run');
        return { command, shell: optionalEnum(field(body, 'shellType'), 'shellType', SHELLS) ?? 'bash' };
      },
      (processes, { command, shell }) => processes.start(command, shell),
    );
    return started ? reply.status(201).send(processResource(started.value)) : reply;
  });

  app.get(`${POOL_ENDPOINT}/processes`, processRoutes.list, async (request, reply) => {
    const processes = await withProcesses(
      request,
      reply,
      () => undefined,
      (all) => all.list(),
    );
    return processes ? { value: processes.value.map(processResource) } : reply;
  });

  app.get(`${POOL_ENDPOINT}/processes/:pid/output`, processRoutes.output, async (request, reply) => {
    const output = await withProcesses(
      request,
      reply,
      () => {
        const query = request.query as Query;
        const maxChars = { min: 1, max: MAX_OUTPUT_READ_CHARS };
        return {
          pid: pidOf(request),
          stdoutOffset: optionalInteger(query.stdoutOffset, 'stdoutOffset', OFFSETS) ?? 0,
          stderrOffset: optionalInteger(query.stderrOffset, 'stderrOffset', OFFSETS) ?? 0,
          maxChars: optionalInteger(query.maxChars, 'maxChars', maxChars) ?? DEFAULT_READ_CHARS,
        };
      },
      (processes, { pid, ...from }) => processes.output(pid, from),
    );
    return output ? outputResource(output.value) : reply;
  });

  app.post(`${POOL_ENDPOINT}/processes/:pid/stdin`, processRoutes.stdin, async (request, reply) => {
    const written = await withProcesses(
      request,
      reply,
      () => {
        const body = optionalObject(request.body, 'body') ?? {};
        return {
          pid: pidOf(request),
          text: optionalString(field(body, 'text'), 'text', MAX_STDIN_CHARS) ?? '',
          close: optionalBoolean(field(body, 'close'), 'close') ?? false,
        };
      },
      (processes, { pid, text, close }) => processes.write(pid, text, close),
    );
    return written ? processResource(written.value) : reply;
  });

  app.post(`${POOL_ENDPOINT}/processes/:pid/kill`, processRoutes.kill, async (request, reply) => {
    const killed = await withProcesses(
      request,
      reply,
      () => ({
        pid: pidOf(request),
        signal: optionalEnum((request.query as Query).signal, 'signal', SIGNALS) ?? 'TERM',
      }),
      (processes, { pid, signal }) => processes.kill(pid, signal),
    );
    return killed ? processResource(killed.value) : reply;
  });
}
