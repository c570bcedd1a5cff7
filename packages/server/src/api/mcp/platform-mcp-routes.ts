/**
 * @module api/mcp/platform-mcp-routes
 * Azure's platform MCP server for a pool, wire-compatible with its preview: JSON-RPC 2.0 over HTTP
 * POST, answered as JSON, no MCP session (each request stands alone), protocol `2025-03-26`, server
 * name "Microsoft Container Apps MCP Server". The caller presents the pool's MCP key in `x-ms-apikey`
 * (or, with the key disabled, a Session Executor's bearer credential). Tools: `launchShell` (a new
 * `environmentId`), `runShellCommandInRemoteEnvironment` and, on PythonLTS pools,
 * `runPythonCodeInRemoteEnvironment`. An `environmentId` is an identifier of the pool: its session
 * has the pool's cooldown, limits, isolation, records and audit. Azure's tutorial sends `initialize`
 * without params and a bare `Content-Type: application/json`, so this is answered by hand rather than
 * through the SDK's transport, which insists on both.
 */

import { randomUUID } from 'node:crypto';

import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

import { authorize, type Principal } from '../../auth/roles.js';
import { AppError, ErrorCode } from '../../errors.js';
import type { ExecutionResult, Executions } from '../../pool/executions.js';
import type { McpServerKeys } from '../../pool/mcp-server-keys.js';
import type { PoolManager } from '../../pool/pool-manager.js';
import { storedSpec } from '../../pool/pool-spec.js';
import type { PoolService } from '../../pool/pool-service.js';
import { POOL_ENDPOINT, requireIdentifier } from '../data/pool-endpoint.js';
import { poolId } from '../../arm-id.js';
import { field, isRecord, type JsonRecord } from '../wire.js';
import { mcpRoutes, PLATFORM_MCP_PATH } from '../schemas/mcp.js';
import type { RateLimits } from '../rate-limit.js';
import { runForTool } from './tool-run.js';

const PROTOCOL_VERSION = '2025-03-26';
const SERVER_NAME = 'Microsoft Container Apps MCP Server';

/** JSON-RPC 2.0's error codes. */
const RPC = { parse: -32700, invalidRequest: -32600, methodNotFound: -32601, invalidParams: -32602 } as const;

class RpcError extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

const environmentId = {
  type: 'string',
  description: 'The environment launchShell returned (any identifier of the pool).',
};

const TOOLS = {
  launchShell: {
    description:
      'Creates a new environment and returns its environmentId; its sandbox starts with the first command.',
    inputSchema: { type: 'object', properties: {} },
  },
  runShellCommandInRemoteEnvironment: {
    description:
      'Runs a shell command in an environment, in /mnt/data, and returns stdout, stderr and the exit code.',
    inputSchema: {
      type: 'object',
      properties: {
        environmentId,
        shellCommand: { type: 'string', description: 'A command line, run with bash -c.' },
        execCommandAndArgs: {
          type: 'array',
          items: { type: 'string' },
          description: 'A command and its arguments, run without a shell’s word splitting.',
        },
      },
      required: ['environmentId'],
    },
  },
  runPythonCodeInRemoteEnvironment: {
    description:
      'Runs Python in an environment; variables persist between calls. Returns stdout, stderr and the value of the last expression.',
    inputSchema: {
      type: 'object',
      properties: { environmentId, pythonCode: { type: 'string' } },
      required: ['environmentId', 'pythonCode'],
    },
  },
} as const;

type ToolName = keyof typeof TOOLS;

/** A word for bash: single-quoted, its own quotes escaped. */
const quoted = (word: string) => `'${word.replaceAll("'", `'\\''`)}'`;

export function registerPlatformMcpRoutes(
  app: FastifyInstance,
  deps: {
    pools: PoolService;
    rateLimits: RateLimits;
    executions: Executions;
    keys: McpServerKeys;
    version: string;
  },
): void {
  /** The pool's manager once the caller is admitted: the pool's MCP key, or a bearer credential that may execute. */
  async function admit(request: FastifyRequest): Promise<{ manager: PoolManager; principal: Principal }> {
    const params = request.params as { subscription: string; resourceGroup: string; pool: string };
    const id = poolId(params.subscription, params.resourceGroup, params.pool);
    const pool = await deps.pools.getPool(id);
    const settings = pool && storedSpec(pool).mcpServer;
    const key = request.headers['x-ms-apikey'];
    let principal = request.principal as Principal | null;
    if (principal) {
      authorize(principal, 'sessions/execute', id);
    } else if (
      typeof key === 'string' &&
      pool &&
      settings?.enabled &&
      !settings.apiKeyDisabled &&
      (await deps.keys.verify(pool, key))
    ) {
      principal = {
        id: `mcpkey:${pool.name}`,
        grants: [{ role: 'SessionExecutor', scope: id }],
        // One caller, whoever holds the key: its requests share one budget, as a key's do.
        root: `mcpkey:${id}`,
      };
      request.principal = principal;
      deps.rateLimits.checkCaller(principal);
    } else {
      throw new AppError(
        ErrorCode.AuthenticationFailed,
        'The MCP server key is missing, wrong or rotated: send the key of fetchMcpServerCredentials in x-ms-apikey.',
      );
    }
    if (!pool || !settings?.enabled) {
      throw new AppError(ErrorCode.ResourceNotFound, `session pool ${params.pool} has no MCP server`);
    }
    return { manager: await deps.pools.require(id, params.pool), principal };
  }

  /** A tool's answer: its fields as `structuredContent`, and as JSON text for clients that read only text. */
  const answer = (structured: JsonRecord, isError = false) => ({
    content: [{ type: 'text', text: JSON.stringify(structured) }],
    structuredContent: structured,
    isError,
  });

  const outcome = (record: ExecutionResult, shell: boolean) =>
    answer(
      {
        stdout: record.stdout,
        stderr: record.stderr,
        ...(shell ? { exitCode: record.exitCode } : { result: record.value }),
        ...(record.error && { error: record.error }),
      },
      record.status === 'Failed',
    );

  async function callTool(
    manager: PoolManager,
    principal: Principal,
    params: JsonRecord,
    checkIdentifier: (identifier: string) => void,
  ) {
    const name = field(params, 'name');
    const args = field(params, 'arguments') ?? {};
    const offered: string[] = tools(manager).map((tool) => tool.name);
    if (typeof name !== 'string' || !offered.includes(name) || !isRecord(args)) {
      throw new RpcError(RPC.invalidParams, `no tool named ${JSON.stringify(name)} on this pool`);
    }
    if ((name as ToolName) === 'launchShell') return answer({ environmentId: randomUUID() });
    const environment = field(args, 'environmentId');
    let identifier: string;
    try {
      identifier = requireIdentifier(environment);
    } catch {
      throw new RpcError(RPC.invalidParams, 'environmentId is required: the one launchShell returned');
    }
    try {
      // The identifier's rate limit, as on the HTTP API (a key's caller has no per-caller one).
      checkIdentifier(identifier);
      if ((name as ToolName) === 'runPythonCodeInRemoteEnvironment') {
        const code = field(args, 'pythonCode');
        if (typeof code !== 'string') throw new RpcError(RPC.invalidParams, 'pythonCode must be a string');
        return outcome(
          await runForTool(deps.executions, manager, {
            identifier,
            principal: principal.id,
            code,
            language: 'python',
          }),
          false,
        );
      }
      const shellCommand = field(args, 'shellCommand');
      const words = field(args, 'execCommandAndArgs');
      const command =
        typeof shellCommand === 'string'
          ? shellCommand
          : Array.isArray(words) && words.length > 0 && words.every((word) => typeof word === 'string')
            ? words.map(quoted).join(' ')
            : undefined;
      if (command === undefined) {
        throw new RpcError(
          RPC.invalidParams,
          'send shellCommand (a string) or execCommandAndArgs (an array of strings)',
        );
      }
      return outcome(
        await runForTool(deps.executions, manager, {
          identifier,
          principal: principal.id,
          code: command,
          language: 'bash',
        }),
        true,
      );
    } catch (error) {
      if (!(error instanceof AppError)) throw error;
      return answer({ error: { code: error.code, message: error.message } }, true);
    }
  }

  const tools = (manager: PoolManager) =>
    (Object.keys(TOOLS) as ToolName[])
      .filter(
        (name) => name !== 'runPythonCodeInRemoteEnvironment' || manager.interpreterType === 'PythonLTS',
      )
      .map((name) => ({ name, ...TOOLS[name] }));

  async function dispatch(
    manager: PoolManager,
    principal: Principal,
    method: string,
    params: JsonRecord,
    checkIdentifier: (identifier: string) => void,
  ) {
    switch (method) {
      case 'initialize':
        return {
          protocolVersion: PROTOCOL_VERSION,
          capabilities: { tools: { call: true, list: true } },
          serverInfo: { name: SERVER_NAME, version: deps.version },
        };
      case 'ping':
        return {};
      case 'tools/list':
        return { tools: tools(manager) };
      case 'tools/call':
        return callTool(manager, principal, params, checkIdentifier);
      default:
        throw new RpcError(RPC.methodNotFound, `no method ${method}`);
    }
  }

  async function handle(request: FastifyRequest, reply: FastifyReply) {
    const { manager, principal } = await admit(request);
    const message = request.body;
    const id = isRecord(message) ? (field(message, 'id') ?? null) : null;
    const method = isRecord(message) ? field(message, 'method') : undefined;
    if (!isRecord(message) || field(message, 'jsonrpc') !== '2.0' || typeof method !== 'string') {
      return reply.send({
        jsonrpc: '2.0',
        id,
        error: { code: RPC.invalidRequest, message: 'a JSON-RPC 2.0 request object is expected' },
      });
    }
    // A notification (no id) is taken in and not answered.
    if (!('id' in message)) return reply.status(202).send();
    const params = field(message, 'params');
    const checkIdentifier = (identifier: string) => deps.rateLimits.checkIdentifier(manager.id, identifier);
    const answered = await dispatch(
      manager,
      principal,
      method,
      isRecord(params) ? params : {},
      checkIdentifier,
    ).then(
      (result) => ({ result }),
      (error: unknown) => {
        if (!(error instanceof RpcError)) throw error;
        return { error: { code: error.code, message: error.message } };
      },
    );
    return reply.send({ jsonrpc: '2.0', id, ...answered });
  }

  app.post(`${POOL_ENDPOINT}${PLATFORM_MCP_PATH}`, mcpRoutes.platformMcp, handle);
  // Streamable HTTP clients ask for a server event stream; this server sends none, as 405 tells a
  // caller the key admits.
  app.get(
    `${POOL_ENDPOINT}${PLATFORM_MCP_PATH}`,
    { schema: { hide: true }, config: { access: 'poolKey' } },
    async (request, reply) => {
      await admit(request);
      void reply.header('allow', 'POST');
      throw new AppError(
        ErrorCode.MethodNotAllowed,
        'the platform MCP server takes POST only; it sends no event stream',
      );
    },
  );
}
