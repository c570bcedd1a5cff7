/**
 * @module api/mcp/sandpool-tools
 * The tools of Sandpool's MCP server for one pool: each with its input schema (api/schemas/mcp), the
 * action a caller's role must allow (the same as its HTTP route's), the pools it fits, and how its
 * answer reads to a model: text for what the code printed and returned, MCP image content for
 * figures, `structuredContent` with the HTTP API's own shapes. They run through the same use cases
 * as the HTTP routes (pool/executions, pool/session-files), so limits, audit and records are alike.
 */

import { Readable } from 'node:stream';

import {
  ErrorCode as RpcErrorCode,
  McpError,
  type CallToolResult,
  type Tool,
} from '@modelcontextprotocol/sdk/types.js';
import Value from 'typebox/value';

import { allows, type Action, type Principal } from '../../auth/roles.js';
import { AppError } from '../../errors.js';
import type { ExecutionResult, Executions } from '../../pool/executions.js';
import type { PoolManager } from '../../pool/pool-manager.js';
import type { InterpreterType } from '../../pool/pool-spec.js';
import { onSessionFiles, type DataDirectory } from '../../pool/session-files.js';
import {
  onSessionProcesses,
  requireProcesses,
  type BackgroundProcess,
  type SessionProcesses,
} from '../../pool/session-processes.js';
import { executionResource, shellExecutionResource } from '../data/executions.js';
import { fileResource } from '../data/file-routes.js';
import { outputResource, processResource } from '../data/process-routes.js';
import { requireIdentifier } from '../data/pool-endpoint.js';
import { mcpTools, type McpToolInput, type McpToolName } from '../schemas/mcp.js';
import { DEFAULT_READ_CHARS } from '../schemas/processes.js';
import { runForTool } from './tool-run.js';

/** What a tool reads of a file, at most: a model reads the rest in parts, or through the HTTP API. */
const MAX_READ_BYTES = 1024 * 1024;

export interface ToolContext {
  manager: PoolManager;
  principal: Principal;
  /** The MCP session's own identifier, used when a call names none. */
  ownIdentifier: string;
  executions: Executions;
  /** Charges the identifier's rate limit, as every request that reaches a session does. */
  charge: (identifier: string) => void;
}

interface ToolDefinition<N extends McpToolName> {
  description: string;
  action: Action;
  /** The interpreter pools it applies to; custom container pools have no MCP tools. */
  pools: InterpreterType[];
  run: (context: ToolContext, input: McpToolInput<N>) => Promise<CallToolResult>;
}

/** The session a call reaches (the MCP session's own when it names none), its rate limit charged. */
function identifierOf(context: ToolContext, given: string | undefined): string {
  const identifier = given === undefined ? context.ownIdentifier : requireIdentifier(given);
  context.charge(identifier);
  return identifier;
}

/** Runs `work` on the /mnt/data of the session the call names (or the MCP session's own). */
async function inFiles<T>(
  context: ToolContext,
  identifier: string | undefined,
  work: (data: DataDirectory) => Promise<T>,
): Promise<T> {
  const { session } = await context.manager.acquire(identifierOf(context, identifier));
  return onSessionFiles(context.manager, session, work);
}

/** Runs `work` on the background processes of the session the call names (or the MCP session's own). */
async function inProcesses<T>(
  context: ToolContext,
  identifier: string | undefined,
  work: (processes: SessionProcesses) => Promise<T>,
): Promise<T> {
  requireProcesses(context.manager);
  const { session } = await context.manager.acquire(identifierOf(context, identifier));
  return onSessionProcesses(context.manager, session, work);
}

/** A process as a model reads it, with the HTTP API's shape as structured content. */
function processAnswer(process: BackgroundProcess): CallToolResult {
  const state = process.running ? 'running' : `exited with ${String(process.exitCode)}`;
  return {
    content: [text(`process ${String(process.pid)} (${process.command}): ${state}`)],
    structuredContent: processResource(process),
  };
}

function text(value: string): { type: 'text'; text: string } {
  return { type: 'text', text: value };
}

/** An execution as a model reads it: what it printed, its value, its error; figures as images. */
function executionAnswer(record: ExecutionResult, shell: boolean): CallToolResult {
  const parts = [
    record.stdout && `stdout:\n${record.stdout}`,
    record.stderr && `stderr:\n${record.stderr}`,
    shell ? `exit code: ${String(record.exitCode ?? 'none')}` : '',
    !shell && record.value !== null ? `result: ${String(record.value)}` : '',
    record.error ? `error: ${record.error.code}: ${record.error.message}` : '',
    record.truncated ? `cut to their bound: ${record.truncated.join(', ')}` : '',
  ].filter(Boolean);
  return {
    content: [
      text(parts.length > 0 ? parts.join('\n\n') : '(no output)'),
      ...record.images.map((image) => ({
        type: 'image' as const,
        data: image.base64_data,
        mimeType: 'image/png',
      })),
    ],
    structuredContent: shell ? shellExecutionResource(record) : executionResource(record),
    isError: record.status === 'Failed',
  };
}

async function run(
  context: ToolContext,
  input: { code: string; identifier?: string; timeoutInSeconds?: number },
  language: 'python' | 'javascript' | 'bash',
): Promise<CallToolResult> {
  const record = await runForTool(context.executions, context.manager, {
    identifier: identifierOf(context, input.identifier),
    principal: context.principal.id,
    code: input.code,
    language,
    timeoutInSeconds: input.timeoutInSeconds,
  });
  return executionAnswer(record, language === 'bash');
}

async function readAtMost(stream: Readable, limit: number): Promise<{ bytes: Buffer; complete: boolean }> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    chunks.push(chunk);
    size += chunk.length;
    if (size > limit) {
      stream.destroy();
      return { bytes: Buffer.concat(chunks).subarray(0, limit), complete: false };
    }
  }
  return { bytes: Buffer.concat(chunks), complete: true };
}

/** Pools whose agent runs command lines and background processes (the Python agent). */
const PYTHON_AGENT: InterpreterType[] = ['PythonLTS', 'Shell'];
/** Every interpreter pool: files are the sandbox's, whichever agent runs in it. */
const ALL: InterpreterType[] = ['PythonLTS', 'NodeLTS', 'Shell'];

const definitions: { [N in McpToolName]: ToolDefinition<N> } = {
  run_python: {
    description:
      'Runs Python in a session and answers what it printed, the value of its last expression, its error, and its figures as images. Variables, imports and files persist between calls of one session.',
    action: 'sessions/execute',
    pools: ['PythonLTS'],
    run: (context, input) => run(context, input, 'python'),
  },
  run_javascript: {
    description:
      'Runs JavaScript (Node.js) in a session and answers what it printed, the value of its last expression and its error. Variables, functions and files persist between calls of one session; top-level await works.',
    action: 'sessions/execute',
    pools: ['NodeLTS'],
    run: (context, input) => run(context, input, 'javascript'),
  },
  run_shell_command: {
    description:
      'Runs a command line with bash in the session’s /mnt/data and answers its output and exit code. Files persist; shell variables do not.',
    action: 'sessions/execute',
    pools: PYTHON_AGENT,
    run: (context, input) => run(context, { ...input, code: input.command }, 'bash'),
  },
  upload_file: {
    description: 'Writes a file under the session’s /mnt/data (missing directories are made).',
    action: 'sessions/execute',
    pools: ALL,
    run: async (context, input) => {
      const bytes = Buffer.from(input.content, input.base64 === true ? 'base64' : 'utf8');
      const value = await inFiles(context, input.identifier, (data) =>
        data.write('', input.path, Readable.from([bytes])),
      );
      return {
        content: [text(`wrote ${String(value.sizeInBytes)} bytes`)],
        structuredContent: fileResource(value),
      };
    },
  },
  list_files: {
    description: 'Lists the files and directories under a directory of the session’s /mnt/data.',
    action: 'sessions/execute',
    pools: ALL,
    run: async (context, input) => {
      const value = await inFiles(context, input.identifier, (data) =>
        data.list(input.path ?? '', input.recursive ?? false),
      );
      const files = value.map(fileResource);
      const lines = value.map(
        (file) =>
          `${file.type === 'directory' ? 'd' : '-'} ${String(file.sizeInBytes).padStart(10)} ${file.directory ? `${file.directory}/` : ''}${file.name}`,
      );
      return {
        content: [text(lines.length > 0 ? lines.join('\n') : '(empty)')],
        structuredContent: { value: files },
      };
    },
  },
  read_file: {
    description: `Reads a file of the session’s /mnt/data: text as text, anything else as base64 (at most ${String(MAX_READ_BYTES / 1024)} KiB).`,
    action: 'sessions/execute',
    pools: ALL,
    run: async (context, input) => {
      const value = await inFiles(context, input.identifier, async (data) => {
        const { file, stream } = await data.open(input.path);
        return { file, ...(await readAtMost(stream, MAX_READ_BYTES)) };
      });
      const decoded = new TextDecoder('utf-8', { fatal: true });
      let body: string;
      let encoding: 'utf8' | 'base64' = 'utf8';
      try {
        body = decoded.decode(value.bytes);
      } catch {
        body = value.bytes.toString('base64');
        encoding = 'base64';
      }
      const note = value.complete
        ? ''
        : `\n\n(the first ${String(MAX_READ_BYTES)} bytes of ${String(value.file.sizeInBytes)})`;
      return {
        content: [text(`${encoding === 'base64' ? '(base64) ' : ''}${body}${note}`)],
        structuredContent: { ...fileResource(value.file), encoding, complete: value.complete, content: body },
      };
    },
  },
  delete_file: {
    description: 'Deletes a file of the session’s /mnt/data.',
    action: 'sessions/execute',
    pools: ALL,
    run: async (context, input) => {
      await inFiles(context, input.identifier, (data) => data.remove(input.path));
      return { content: [text(`deleted ${input.path}`)] };
    },
  },
  start_process: {
    description:
      'Starts a command line with bash in the session’s /mnt/data in the background (a dev server, a long job) and answers its pid at once. It runs until it exits, is killed, or the session ends.',
    action: 'sessions/execute',
    pools: PYTHON_AGENT,
    run: async (context, input) =>
      processAnswer(await inProcesses(context, input.identifier, (all) => all.start(input.command, 'bash'))),
  },
  list_processes: {
    description: 'Lists the session’s background processes, running and exited.',
    action: 'sessions/execute',
    pools: PYTHON_AGENT,
    run: async (context, input) => {
      const value = await inProcesses(context, input.identifier, (all) => all.list());
      const lines = value.map(
        (p) => `${String(p.pid)} ${p.running ? 'running' : `exited ${String(p.exitCode)}`} ${p.command}`,
      );
      return {
        content: [text(lines.join('\n') || '(none)')],
        structuredContent: { value: value.map(processResource) },
      };
    },
  },
  read_process_output: {
    description:
      'Reads what a background process wrote since the given offsets, and whether it still runs. Pass the answer’s next offsets to read on.',
    action: 'sessions/execute',
    pools: PYTHON_AGENT,
    run: async (context, input) => {
      const output = await inProcesses(context, input.identifier, (all) =>
        all.output(input.pid, {
          stdoutOffset: input.stdoutOffset ?? 0,
          stderrOffset: input.stderrOffset ?? 0,
          maxChars: input.maxChars ?? DEFAULT_READ_CHARS,
        }),
      );
      const { content } = processAnswer(output.process);
      const parts = [
        output.stdout.text && `stdout:\n${output.stdout.text}`,
        output.stderr.text && `stderr:\n${output.stderr.text}`,
        `next offsets: stdoutOffset ${String(output.stdout.next)}, stderrOffset ${String(output.stderr.next)}`,
      ].filter(Boolean);
      return {
        content: [...content, text(parts.join('\n\n'))],
        structuredContent: outputResource(output),
      };
    },
  },
  write_process_stdin: {
    description: 'Writes text to a background process’s stdin; `close` ends its input.',
    action: 'sessions/execute',
    pools: PYTHON_AGENT,
    run: async (context, input) =>
      processAnswer(
        await inProcesses(context, input.identifier, (all) =>
          all.write(input.pid, input.text, input.close ?? false),
        ),
      ),
  },
  kill_process: {
    description: 'Sends a signal (default TERM) to a background process and everything it started.',
    action: 'sessions/execute',
    pools: PYTHON_AGENT,
    run: async (context, input) =>
      processAnswer(
        await inProcesses(context, input.identifier, (all) => all.kill(input.pid, input.signal ?? 'TERM')),
      ),
  },
  end_session: {
    description:
      'Ends a session: its sandbox, variables and files are gone. The next call with its identifier starts a new one.',
    action: 'sessions/stop',
    pools: ALL,
    run: async (context, input) => {
      const identifier = identifierOf(context, input.identifier);
      const ended = await context.manager.stop(identifier);
      return {
        content: [text(ended ? `ended ${identifier}` : `${identifier} had no live session`)],
        structuredContent: { identifier, ended },
      };
    },
  },
  list_sessions: {
    description:
      'Lists the pool’s live sessions on this node: identifier, when it started, when it was last used.',
    action: 'sessions/read',
    pools: ALL,
    run: (context) => {
      const sessions = context.manager.listSessions().map((session) => ({
        identifier: session.identifier,
        allocatedAt: new Date(session.allocatedAt).toISOString(),
        lastAccessedAt: new Date(session.lastAccessedAt).toISOString(),
      }));
      return Promise.resolve({
        content: [
          text(sessions.map((s) => `${s.identifier} (since ${s.allocatedAt})`).join('\n') || '(none)'),
        ],
        structuredContent: { sessions },
      });
    },
  },
};

const names = Object.keys(definitions) as McpToolName[];

/** The tools a caller may call on the pool, as `tools/list` answers them. */
export function toolsFor(manager: PoolManager, principal: Principal): Tool[] {
  return names
    .filter((name) => offered(name, manager, principal))
    .map((name) => ({
      name,
      description: definitions[name].description,
      inputSchema: mcpTools[name] as unknown as Tool['inputSchema'],
    }));
}

function offered(name: McpToolName, manager: PoolManager, principal: Principal): boolean {
  const definition = definitions[name];
  return (
    manager.containerType !== 'CustomContainer' &&
    definition.pools.includes(manager.interpreterType) &&
    allows(principal, definition.action, manager.id)
  );
}

/**
 * Calls a tool. A tool the caller may not call is unknown to it, as it is missing from its list, and
 * arguments that break the schema are refused before anything runs: both as protocol errors. What
 * fails while the tool runs (the pool full, a file missing) is the tool's answer, marked an error,
 * with the HTTP API's error code, so the model reads it.
 */
export async function callTool(context: ToolContext, name: string, args: unknown): Promise<CallToolResult> {
  if (!(name in definitions) || !offered(name as McpToolName, context.manager, context.principal)) {
    throw new McpError(RpcErrorCode.InvalidParams, `no tool named ${JSON.stringify(name)}`);
  }
  const tool = name as McpToolName;
  const input = args ?? {};
  const [problem] = Value.Errors(mcpTools[tool], input);
  if (problem) {
    throw new McpError(
      RpcErrorCode.InvalidParams,
      `${tool}: ${problem.instancePath || 'arguments'} ${problem.message}`,
    );
  }
  const definition = definitions[tool] as ToolDefinition<typeof tool>;
  try {
    return { isError: false, ...(await definition.run(context, input)) };
  } catch (error) {
    if (!(error instanceof AppError)) throw error;
    return {
      content: [text(`${error.code}: ${error.message}`)],
      structuredContent: { error: { code: error.code, message: error.message } },
      isError: true,
    };
  }
}
