/**
 * @module api/mcp/mcp-routes
 * Sandpool's MCP server, one per pool at `<pool endpoint>/mcp`: the official SDK's Streamable HTTP
 * transport and low-level server, with the SDK's session handling (`mcp-session-id`). Every request
 * is authenticated like any other route and needs at least Reader on the pool; an MCP session belongs
 * to the credential and pool that opened it (another caller's session id is not found), and each
 * request's own principal decides which tools it sees and may call. A session ends, with its event
 * stream, when the credential that opened it is revoked or expires. A session that names no
 * identifier works in a sandbox of its own (a private identifier: no other caller can list it or
 * reach it through any API), ended with the MCP session. Every tool call on a session charges its
 * identifier's rate limit, as an HTTP request does. Idle MCP sessions are closed after an hour; one
 * caller (all the credentials of one lineage) holds at most {@link MAX_SESSIONS_PER_CALLER} at once.
 */

import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import type { AuthInfo } from '@modelcontextprotocol/sdk/server/auth/types.js';
import {
  CallToolRequestSchema,
  isInitializeRequest,
  ListToolsRequestSchema,
} from '@modelcontextprotocol/sdk/types.js';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

import type { CredentialWatch } from '../../auth/credential-watch.js';
import { rootOf, type Principal } from '../../auth/roles.js';
import { AppError, ErrorCode } from '../../errors.js';
import type { Executions } from '../../pool/executions.js';
import type { PoolService } from '../../pool/pool-service.js';
import { privateIdentifier } from '../../pool/private-identifier.js';
import { POOL_ENDPOINT, poolFor } from '../data/pool-endpoint.js';
import type { RateLimits } from '../rate-limit.js';
import { mcpRoutes } from '../schemas/mcp.js';
import { callTool, toolsFor } from './sandpool-tools.js';

const IDLE_MS = 60 * 60 * 1000;
const SWEEP_MS = 60 * 1000;
/** MCP sessions one node keeps at once; a new one past this is refused until others end. */
const MAX_SESSIONS = 10_000;
/** MCP sessions one caller keeps open on one node: each may hold a sandbox of its own. */
export const MAX_SESSIONS_PER_CALLER = 32;

interface McpSession {
  transport: StreamableHTTPServerTransport;
  principalId: string;
  /** Whose quota the session counts against (see rootOf). */
  caller: string;
  poolId: string;
  poolName: string;
  lastUsed: number;
  /** Stops watching the opening credential. */
  unwatch: () => void;
}

export interface McpRoutesDeps {
  pools: PoolService;
  rateLimits: RateLimits;
  executions: Executions;
  credentials: CredentialWatch;
  now: () => number;
  version: string;
}

/** The principal the authentication hook resolved for the request a handler serves. */
function principalOf(extra: { authInfo?: AuthInfo }): Principal {
  const principal = extra.authInfo?.extra?.principal as Principal | undefined;
  if (!principal) throw new AppError(ErrorCode.AuthenticationFailed, 'the MCP request carries no principal');
  return principal;
}

export function registerMcpRoutes(app: FastifyInstance, deps: McpRoutesDeps): void {
  const sessions = new Map<string, McpSession>();

  /** The identifier of the sandbox an MCP session uses when a tool call names none: its own. */
  const ownIdentifier = (sessionId: string) => privateIdentifier(`mcp ${sessionId}`);
  /** How many sessions each caller holds open. */
  const perCaller = new Map<string, number>();
  const count = (caller: string, by: number) => {
    const held = (perCaller.get(caller) ?? 0) + by;
    if (held > 0) perCaller.set(caller, held);
    else perCaller.delete(caller);
  };

  /** Ends an MCP session and the sandbox of its own. */
  async function end(sessionId: string, session: McpSession): Promise<void> {
    if (!sessions.delete(sessionId)) return;
    count(session.caller, -1);
    session.unwatch();
    await session.transport.close().catch(() => undefined);
    await deps.pools
      .manager(session.poolId)
      ?.stop(ownIdentifier(sessionId))
      .catch(() => undefined);
  }

  function open(
    poolId: string,
    poolName: string,
    principal: Principal,
    charge: (identifier: string) => void,
  ): StreamableHTTPServerTransport {
    if (sessions.size >= MAX_SESSIONS) {
      throw new AppError(
        ErrorCode.TooManyMcpSessions,
        `this node holds ${String(MAX_SESSIONS)} MCP sessions; retry later`,
      );
    }
    const caller = rootOf(principal);
    if ((perCaller.get(caller) ?? 0) >= MAX_SESSIONS_PER_CALLER) {
      throw new AppError(
        ErrorCode.TooManyMcpSessions,
        `this caller holds ${String(MAX_SESSIONS_PER_CALLER)} MCP sessions on this node; end one (DELETE with its mcp-session-id) first`,
      );
    }
    const transport: StreamableHTTPServerTransport = new StreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      onsessioninitialized: (sessionId) => {
        const session: McpSession = {
          transport,
          principalId: principal.id,
          caller,
          poolId,
          poolName,
          lastUsed: deps.now(),
          unwatch: () => undefined,
        };
        sessions.set(sessionId, session);
        count(caller, 1);
        session.unwatch = deps.credentials.watch(principal, () => void end(sessionId, session));
      },
      onsessionclosed: async (sessionId) => {
        const session = sessions.get(sessionId);
        if (session) await end(sessionId, session);
      },
    });
    // The low-level server, as the SDK advises for advanced use: the tools' input schemas are the
    // API's own TypeBox (JSON Schema) schemas, which McpServer's zod-only tool registration cannot take.
    // eslint-disable-next-line @typescript-eslint/no-deprecated
    const server = new Server(
      { name: 'sandpool', version: deps.version },
      {
        capabilities: { tools: {} },
        instructions:
          'Runs code in isolated, stateful sandboxes of one Sandpool session pool. Calls without an identifier share this MCP session’s own sandbox; name an identifier to reach another session of the pool.',
      },
    );
    server.setRequestHandler(ListToolsRequestSchema, async (_request, extra) => ({
      tools: toolsFor(await deps.pools.require(poolId, poolName), principalOf(extra)),
    }));
    server.setRequestHandler(CallToolRequestSchema, async (request, extra) =>
      callTool(
        {
          manager: await deps.pools.require(poolId, poolName),
          principal: principalOf(extra),
          // A tool is called only in an initialized MCP session, which has its id.
          ownIdentifier: ownIdentifier(extra.sessionId ?? transport.sessionId!),
          executions: deps.executions,
          charge,
        },
        request.params.name,
        request.params.arguments,
      ),
    );
    void server.connect(transport);
    return transport;
  }

  const sweep = setInterval(() => {
    const cutoff = deps.now() - IDLE_MS;
    for (const [sessionId, session] of sessions) {
      if (session.lastUsed < cutoff) void end(sessionId, session);
    }
  }, SWEEP_MS);
  sweep.unref();
  // Before the server waits for its connections: an MCP session's event stream would hold it open.
  app.addHook('preClose', async () => {
    clearInterval(sweep);
    await Promise.all([...sessions].map(([sessionId, session]) => end(sessionId, session)));
  });

  async function handle(request: FastifyRequest, reply: FastifyReply): Promise<void> {
    const { manager } = await poolFor(deps.pools, request, { versionOptional: true });
    const sessionId = request.headers['mcp-session-id'];
    let transport: StreamableHTTPServerTransport;
    if (typeof sessionId === 'string') {
      const session = sessions.get(sessionId);
      // Another caller's session, or one of another pool, is not found, as an unknown one is.
      if (!session || session.principalId !== request.principal.id || session.poolId !== manager.id) {
        throw new AppError(ErrorCode.McpSessionNotFound, 'no MCP session of this id; initialize a new one');
      }
      session.lastUsed = deps.now();
      transport = session.transport;
    } else if (request.method === 'POST' && isInitializeRequest(request.body)) {
      transport = open(manager.id, manager.name, request.principal, (identifier) =>
        deps.rateLimits.checkIdentifier(manager.id, identifier),
      );
    } else {
      throw new AppError(
        ErrorCode.InvalidRequestContent,
        'send the mcp-session-id header the initialize answer gave, or initialize first',
        { target: 'mcp-session-id' },
      );
    }
    reply.hijack();
    const raw = request.raw as IncomingMessage & { auth?: AuthInfo };
    raw.auth = {
      token: '',
      clientId: request.principal.id,
      scopes: [],
      extra: { principal: request.principal },
    };
    await transport.handleRequest(raw, reply.raw, request.body);
  }

  const path = `${POOL_ENDPOINT}/mcp`;
  app.post(path, mcpRoutes.post, handle);
  app.get(path, mcpRoutes.stream, handle);
  app.delete(path, mcpRoutes.end, handle);
}
