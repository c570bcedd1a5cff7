/**
 * @module api/data/session-proxy
 * The session proxy of custom container pools: every method and path under the pool endpoint,
 * except the routes the pool answers itself (`.management/…`, `session`, `listSessions`,
 * `metadata`), goes to the target port of the identifier's session, allocated on first use. Such a
 * request takes the request path's steps (api/request-path) as the container's: Session Executor on
 * the pool, its identifier charged, its session claimed here or the request forwarded to its node,
 * before its body is read. Bodies stream both ways unbuffered, WebSocket (any) upgrades are
 * tunnelled, and a client that leaves closes the container's connection too. The caller's bearer
 * token stays here: it is Sandpool's credential, and the container is untrusted code.
 */

import { request as httpRequest, Agent, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';

import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';

import type { CredentialWatch } from '../../auth/credential-watch.js';
import { authorize, type Principal } from '../../auth/roles.js';
import { AppError, ErrorCode } from '../../errors.js';
import type { Upstream } from '../../pool/instance.js';
import type { Allocation, PoolManager } from '../../pool/pool-manager.js';
import { poolId } from '../../arm-id.js';
import type { PoolService } from '../../pool/pool-service.js';
import { writeResponseError, writeSocketError } from '../errors.js';
import { rawHead } from '../hop-by-hop.js';
import { forwardUpstream, forwardedHeaders } from '../upstream-request.js';
import type { SessionSteps } from '../request-path.js';
import type { Access } from '../schemas/common.js';
import { POOL_ENDPOINT, previousSessionHeaders, requireIdentifier } from './pool-endpoint.js';

/** How many segments the pool endpoint's path has. */
const POOL_ENDPOINT_SEGMENTS = POOL_ENDPOINT.split('/').length - 1;

/**
 * Routes the pool answers itself, custom container pools too (Azure proxies all but `.management`):
 * its `.management` paths (any of them), `session`, `listSessions` and `metadata`.
 */
const POOL_OWNED = new Set(
  [
    '/.management/*',
    '/.management/stopSession',
    '/.management/logs',
    '/.management/startFailures',
    '/session',
    '/listSessions',
    '/metadata',
  ].map((path) => `${POOL_ENDPOINT}${path}`),
);

/** What a request to a custom container's session takes, whatever route of an interpreter pool it matched. */
const CONTAINER_ACCESS: Access = { action: 'sessions/execute', on: 'pool' };

export interface SessionProxyDeps {
  pools: PoolService;
  sessions: SessionSteps;
  credentials: CredentialWatch;
  log: Logger;
  poolFullStatus: 429 | 404;
  /** `https` when the server listens with TLS. */
  scheme: 'http' | 'https';
}

interface ProxyTarget {
  manager: PoolManager;
  identifier: string;
  /** The path under the pool endpoint, query included. */
  path: string;
  /** The pool endpoint's own path, for X-Forwarded-Prefix. */
  prefix: string;
}

/** Keep-alive connections to each container, so a request costs no new connection through the bridge. */
const agents = new WeakMap<Upstream, Agent>();
function agentFor(upstream: Upstream): Agent {
  let agent = agents.get(upstream);
  if (!agent) {
    agent = new Agent({ keepAlive: true, maxSockets: 256 });
    agents.set(upstream, agent);
  }
  return agent;
}

type PoolParams = { subscription: string; resourceGroup: string; pool: string; '*'?: string };

/**
 * The custom container session a request is for, by the route it matched and that route's
 * parameters; undefined for a route the pool answers itself or a pool that is no custom container.
 */
async function targetOf(
  pools: PoolService,
  route: string | undefined,
  params: PoolParams,
  url: string,
): Promise<ProxyTarget | undefined> {
  if (route === undefined || !route.startsWith(POOL_ENDPOINT) || POOL_OWNED.has(route)) return undefined;
  // A pool another node created moments ago is taken up here too.
  const manager = await pools.known(poolId(params.subscription, params.resourceGroup, params.pool));
  if (manager?.containerType !== 'CustomContainer') return undefined;
  const queryAt = url.indexOf('?');
  const query = queryAt === -1 ? '' : url.slice(queryAt);
  const identifier = requireIdentifier(new URLSearchParams(query).get('identifier') ?? undefined);
  // The pool endpoint is the path's first six segments (`subscriptions/<s>/resourceGroups/<rg>/
  // sessionPools/<pool>`), as the client spelt them; the container gets the rest.
  const path = url.slice(0, queryAt === -1 ? url.length : queryAt);
  const segments = path.split('/').filter((segment) => segment !== '');
  const below = segments.slice(POOL_ENDPOINT_SEGMENTS).join('/');
  const trailing = below !== '' && path.endsWith('/') ? '/' : '';
  return {
    manager,
    identifier,
    path: `/${below}${trailing}${query}`,
    prefix: `/${segments.slice(0, POOL_ENDPOINT_SEGMENTS).join('/')}`,
  };
}

/** Why the container did not answer, as the error the client gets. */
async function unreachable(upstream: Upstream, error: Error): Promise<AppError> {
  const running = await upstream.confirmRunning().catch(() => false);
  return new AppError(
    ErrorCode.ContainerUnreachable,
    running
      ? `the session's container did not answer on port ${upstream.targetPort}: ${error.message}`
      : `the session's container exited; the next request starts a new session`,
  );
}

export function registerSessionProxy(app: FastifyInstance, deps: SessionProxyDeps): void {
  const sendError = (res: ServerResponse, error: unknown) =>
    writeResponseError(res, error, { poolFullStatus: deps.poolFullStatus });

  /**
   * Forwards one request and resolves once its response has ended, the client has gone, or the
   * credential that opened it was revoked or expired (a long stream does not outlive it).
   */
  const forward = async (
    req: IncomingMessage,
    res: ServerResponse,
    target: ProxyTarget,
    reached: { upstream: Upstream; allocation: Allocation; principal: Principal },
  ) => {
    const { upstream } = reached;
    // A long stream does not outlive the credential that opened it.
    const unwatch = deps.credentials.watch(reached.principal, () => res.destroy());
    const { outcome, responseSeconds } = await forwardUpstream(
      req,
      res,
      {
        socketPath: upstream.socketPath,
        agent: agentFor(upstream),
        path: target.path,
        headers: forwardedHeaders(req, deps.scheme, target.prefix),
        extraResponseHeaders: previousSessionHeaders(reached.allocation),
      },
      (error) => void unreachable(upstream, error).then((appError) => sendError(res, appError)),
    );
    unwatch();
    target.manager.recorder.proxied(outcome, responseSeconds);
  };

  // After the request path's own hook: the caller is authenticated and holds the route's access.
  app.addHook('onRequest', async (request, reply) => {
    const params = request.params as PoolParams;
    const target = await targetOf(deps.pools, request.routeOptions.url, params, request.raw.url ?? '');
    if (!target) return;
    authorize(request.principal, 'sessions/execute', target.manager.id);
    const reached = await deps.sessions.reachAs(request, reply, target, 'creates');
    if (!reached) return;
    const { session, allocation } = reached.claimed!;
    reply.hijack();
    await target.manager
      .use(
        session,
        () =>
          forward(request.raw, reply.raw, target, {
            upstream: session.instance.upstream!,
            allocation,
            principal: request.principal,
          }),
        { serialize: false },
      )
      .catch((error: unknown) => {
        if (!(error instanceof AppError)) request.log.error({ err: error }, 'proxy failed');
        sendError(reply.raw, error);
      });
  });

  // The pool endpoint itself and the paths below it that no interpreter route takes: a container's
  // only (its requests were taken above), and `.management` ones the pool would answer if it had them.
  const notFound = (request: FastifyRequest) => {
    throw new AppError(
      ErrorCode.RouteNotFound,
      `Route ${request.method}:${request.url.split('?')[0] ?? ''} not found.`,
    );
  };
  const containerOnly = {
    schema: { hide: true },
    config: { access: CONTAINER_ACCESS, session: 'creates' as const },
  };
  app.all(POOL_ENDPOINT, containerOnly, notFound);
  app.all(`${POOL_ENDPOINT}/*`, containerOnly, notFound);
  app.all(
    `${POOL_ENDPOINT}/.management/*`,
    { schema: { hide: true }, config: { access: { action: 'sessions/read', on: 'pool' } as const } },
    notFound,
  );

  app.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    void tunnel(req, socket, head).catch((error: unknown) => {
      if (!(error instanceof AppError)) deps.log.error({ err: error }, 'proxy upgrade failed');
      writeSocketError(socket, error, { poolFullStatus: deps.poolFullStatus });
    });
  });

  /**
   * Tunnels an upgrade to the container, after the request path's steps: once the container switches
   * protocols, bytes flow both ways untouched.
   */
  async function tunnel(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    socket.on('error', () => socket.destroy());
    const url = req.url ?? '/';
    const path = url.split('?')[0] ?? '/';
    // Fastify's types promise a route; find-my-way answers null for a path no route takes.
    const found = app.findRoute({ method: req.method ?? 'GET', url: path }) as {
      params: Partial<PoolParams>;
    } | null;
    const noRoute = () => new AppError(ErrorCode.RouteNotFound, `No route upgrades ${path}.`);
    const { subscription, resourceGroup, pool } = found?.params ?? {};
    if (subscription === undefined || resourceGroup === undefined || pool === undefined) throw noRoute();
    const params = { subscription, resourceGroup, pool };
    const targetHere = async () => {
      const target = await targetOf(deps.pools, `${POOL_ENDPOINT}/*`, params, url);
      if (!target) throw noRoute();
      return target;
    };
    const reached = await deps.sessions.reachForUpgrade(
      req,
      socket,
      head,
      { access: CONTAINER_ACCESS, params },
      targetHere,
    );
    if (!reached) return;
    const { target } = reached;
    const { recorder } = target.manager;
    const { session, allocation } = reached.claimed;
    const { principal } = reached;
    await target.manager.use(
      session,
      () =>
        new Promise<void>((resolve, reject) => {
          const upstream = session.instance.upstream!;
          const previous = Object.entries(previousSessionHeaders(allocation)).flat();
          const outbound = httpRequest({
            socketPath: upstream.socketPath,
            method: req.method,
            path: target.path,
            headers: {
              ...forwardedHeaders(req, deps.scheme, target.prefix),
              connection: 'Upgrade',
              upgrade: req.headers.upgrade ?? '',
            },
          });
          outbound.on('upgrade', (answer, upstreamSocket, upstreamHead) => {
            recorder.upgraded('switched');
            socket.write(
              rawHead(`101 ${answer.statusMessage ?? 'Switching Protocols'}`, [
                ...answer.rawHeaders,
                ...previous,
              ]),
            );
            if (upstreamHead.length > 0) socket.write(upstreamHead);
            if (head.length > 0) upstreamSocket.write(head);
            upstreamSocket.pipe(socket).pipe(upstreamSocket);
            const unwatch = deps.credentials.watch(principal, () => socket.destroy());
            const close = () => {
              unwatch();
              socket.destroy();
              upstreamSocket.destroy();
              resolve();
            };
            socket.on('close', close);
            upstreamSocket.on('close', close);
            upstreamSocket.on('error', close);
          });
          outbound.on('response', (answer) => {
            // The container answered without switching: relay its answer as it is.
            recorder.upgraded('refused');
            socket.write(
              rawHead(`${String(answer.statusCode)} ${answer.statusMessage ?? ''}`, [
                ...answer.rawHeaders,
                ...previous,
              ]),
            );
            answer.pipe(socket);
            answer.on('end', resolve);
          });
          outbound.on('error', (error) => {
            recorder.upgraded('unreachable');
            void unreachable(upstream, error).then(reject);
          });
          outbound.end();
        }),
      { serialize: false },
    );
  }
}
