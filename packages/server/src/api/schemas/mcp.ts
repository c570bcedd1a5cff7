/**
 * @module api/schemas/mcp
 * Sandpool's MCP server (Streamable HTTP, one per pool, no Azure counterpart): its route, and the
 * input schemas of its tools, made of the same pieces as the HTTP API's requests so an argument means
 * the same thing in both.
 */

import { Type, type Static } from 'typebox';

import { DataQuery, ManagementQuery, NoContent, PoolEndpointParams, route } from './common.js';
import { PoolParams } from './pools.js';
import { ExecutionRequest } from './data.js';
import { MAX_OUTPUT_READ_CHARS, MAX_STDIN_CHARS, ProcessSignal, ProcessStart } from './processes.js';

/** Where a pool's platform MCP server (Azure's) answers, under its pool management endpoint. */
export const PLATFORM_MCP_PATH = '/platformMcp';

const identifier = Type.Optional({
  ...DataQuery.identifier,
  description:
    'The session to use (the `identifier` of the HTTP API); without it, the MCP session’s own sandbox.',
});
const path = Type.String({
  minLength: 1,
  maxLength: 1024,
  description: 'A path under /mnt/data, relative or absolute (`/mnt/data/report.csv`).',
});
const timeoutInSeconds = ExecutionRequest.properties.timeoutInSeconds;
const pid = Type.Integer({ minimum: 1, description: 'The process id start_process answered.' });
const offset = Type.Optional(
  Type.Integer({
    minimum: 0,
    description: 'Characters already read (the last answer’s next offset); default 0.',
  }),
);

export const mcpTools = {
  run_python: Type.Object(
    {
      code: Type.String({ minLength: 1, description: 'Python to run; variables persist in the session.' }),
      identifier,
      timeoutInSeconds,
    },
    { additionalProperties: false },
  ),
  run_javascript: Type.Object(
    {
      code: Type.String({
        minLength: 1,
        description: 'JavaScript to run; variables and functions persist in the session.',
      }),
      identifier,
      timeoutInSeconds,
    },
    { additionalProperties: false },
  ),
  run_shell_command: Type.Object(
    {
      command: Type.String({ minLength: 1, description: 'A command line, run with `bash -c` in /mnt/data.' }),
      identifier,
      timeoutInSeconds,
    },
    { additionalProperties: false },
  ),
  upload_file: Type.Object(
    {
      path,
      content: Type.String({ description: 'The file’s text (UTF-8), or its bytes in base64 with `base64`.' }),
      base64: Type.Optional(Type.Boolean({ description: '`content` is base64.' })),
      identifier,
    },
    { additionalProperties: false },
  ),
  list_files: Type.Object(
    {
      path: Type.Optional(path),
      recursive: Type.Optional(Type.Boolean()),
      identifier,
    },
    { additionalProperties: false },
  ),
  read_file: Type.Object({ path, identifier }, { additionalProperties: false }),
  delete_file: Type.Object({ path, identifier }, { additionalProperties: false }),
  start_process: Type.Object(
    { command: ProcessStart.properties.command, identifier },
    { additionalProperties: false },
  ),
  list_processes: Type.Object({ identifier }, { additionalProperties: false }),
  read_process_output: Type.Object(
    {
      pid,
      stdoutOffset: offset,
      stderrOffset: offset,
      maxChars: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_OUTPUT_READ_CHARS })),
      identifier,
    },
    { additionalProperties: false },
  ),
  write_process_stdin: Type.Object(
    {
      pid,
      text: Type.String({ maxLength: MAX_STDIN_CHARS }),
      close: Type.Optional(Type.Boolean({ description: 'Close stdin afterwards (end of input).' })),
      identifier,
    },
    { additionalProperties: false },
  ),
  kill_process: Type.Object(
    {
      pid,
      signal: Type.Optional(ProcessSignal),
      identifier,
    },
    { additionalProperties: false },
  ),
  end_session: Type.Object({ identifier }, { additionalProperties: false }),
  list_sessions: Type.Object({}, { additionalProperties: false }),
};

export type McpToolName = keyof typeof mcpTools;
export type McpToolInput<N extends McpToolName> = Static<(typeof mcpTools)[N]>;

const tag = 'MCP' as const;

const McpCredentials = Type.Object({ apiKey: Type.String() });

const JsonRpcAnswer = Type.Object(
  {
    jsonrpc: Type.Literal('2.0'),
    id: Type.Union([Type.String(), Type.Number(), Type.Null()]),
    result: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
    error: Type.Optional(Type.Object({ code: Type.Integer(), message: Type.String() })),
  },
  { description: 'A JSON-RPC 2.0 answer: `result`, or `error` with JSON-RPC’s code.' },
);

export const mcpRoutes = {
  post: route({
    operationId: 'Mcp_Post',
    access: { action: 'sessions/read', on: 'pool' },
    summary: 'Sandpool’s MCP server for the pool: a JSON-RPC message (Streamable HTTP)',
    description:
      'Model Context Protocol over Streamable HTTP, served by the official TypeScript SDK with its session handling (`mcp-session-id`, given by the `initialize` answer). Authenticated like every route; an MCP session belongs to the credential that opened it. Tools run code and shell commands, move files and end sessions; each appears only to a caller whose role allows it (a Reader sees `list_sessions` alone). See docs/mcp.md.',
    tag,
    audit: 'mcp.request',
    params: PoolEndpointParams,
    response: {
      200: {
        description: 'A JSON-RPC answer, as JSON or as an event stream.',
        content: {
          'application/json': { schema: Type.Any() },
          'text/event-stream': { schema: Type.String() },
        },
      },
      202: NoContent('A notification or response taken in.'),
    },
  }),
  stream: route({
    operationId: 'Mcp_Stream',
    access: { action: 'sessions/read', on: 'pool' },
    summary: 'Sandpool’s MCP server: the MCP session’s event stream for messages from the server',
    tag,
    params: PoolEndpointParams,
    response: {
      200: {
        description: 'Server-sent events.',
        content: { 'text/event-stream': { schema: Type.String() } },
      },
    },
  }),
  end: route({
    operationId: 'Mcp_EndSession',
    access: { action: 'sessions/read', on: 'pool' },
    summary: 'Sandpool’s MCP server: ends the MCP session, and the sandbox of its own',
    tag,
    audit: 'mcp.endSession',
    params: PoolEndpointParams,
    response: { 200: NoContent('Ended.') },
  }),
  platformMcp: route({
    operationId: 'PlatformMcp_Request',
    access: 'poolKey',
    summary:
      'Azure’s platform MCP server for the pool: JSON-RPC over POST, the pool’s MCP key in `x-ms-apikey`',
    description:
      'Protocol 2025-03-26 as Azure serves it (its `mcpServerEndpoint`): `initialize`, `tools/list` and `tools/call` of `launchShell`, `runShellCommandInRemoteEnvironment` and, on PythonLTS pools, `runPythonCodeInRemoteEnvironment`. An `environmentId` is a session of the pool. With `isMcpServerApiKeyDisabled`, a Session Executor’s bearer credential instead of the key.',
    tag,
    audit: 'mcp.platform',
    params: PoolEndpointParams,
    response: {
      200: JsonRpcAnswer,
      202: NoContent('A notification taken in.'),
    },
  }),
  fetchCredentials: route({
    operationId: 'SessionPools_FetchMcpServerCredentials',
    access: { action: ['pools/write', 'sessions/execute'], on: 'pool' },
    summary: 'The API key of the pool’s platform MCP server (made on first fetch); needs Contributor',
    tag,
    audit: 'mcp.fetchCredentials',
    params: PoolParams,
    querystring: ManagementQuery,
    response: { 200: McpCredentials },
  }),
  rotateCredentials: route({
    operationId: 'SessionPools_RotateMcpServerCredentials',
    access: { action: ['pools/write', 'sessions/execute'], on: 'pool' },
    summary:
      'Replaces the key of the pool’s platform MCP server: the old one is refused at once; needs Contributor',
    tag,
    audit: 'mcp.rotateCredentials',
    params: PoolParams,
    querystring: ManagementQuery,
    response: { 200: McpCredentials },
  }),
};
