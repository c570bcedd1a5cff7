/**
 * @module api/data/session-proxy
 * The session proxy of custom container pools: every method and path under the pool endpoint,
 * except the pool's own (`.management/…`, `session`, `listSessions`, `metadata`), goes to the
 * target port of the identifier's session, allocated on first use. Bodies stream both ways
 * unbuffered, WebSocket (any) upgrades are tunnelled, and a client that leaves closes the
 * container's connection too. The caller's bearer token stays here: it is Sandpool's credential,
 * and the container is untrusted code.
 */

import {
  request as httpRequest,
  Agent,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type ServerResponse,
} from 'node:http';
import type { Duplex } from 'node:stream';

import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';

import type { Authenticator } from '../../auth/authenticator.js';
import type { CredentialWatch } from '../../auth/credential-watch.js';
import type { RateLimits } from '../rate-limit.js';
import { authorize, type Principal } from '../../auth/roles.js';
import { AppError, ErrorCode } from '../../errors.js';
import type { Upstream } from '../../pool/instance.js';
import type { Allocation, PoolManager } from '../../pool/pool-manager.js';
import { poolId } from '../../arm-id.js';
import type { PoolService } from '../../pool/pool-service.js';
import { renderError, writeSocketError } from '../errors.js';
import { endToEnd, rawHead } from '../hop-by-hop.js';
import { routeOf, tunnelToNode, type NodeForwardingDeps } from '../node-forwarding.js';
import { previousSessionHeaders, requireIdentifier } from './pool-endpoint.js';

/** `/subscriptions/<s>/resourceGroups/<rg>/sessionPools/<pool>` and the rest of the path. */
const POOL_PATH =
  /^\/subscriptions\/([^/?]+)\/resourceGroups\/([^/?]+)\/sessionPools\/([^/?]+)(\/[^?]*)?(\?.*)?$/;
/** Paths the pool answers itself, even for custom containers (Azure proxies all but the first). */
const POOL_OWNED = /^\/(\.management\/|session$|listSessions$|metadata$)/;
export interface SessionProxyDeps {
  pools: PoolService;
  authenticator: Authenticator;
  credentials: CredentialWatch;
  rateLimits: RateLimits;
  log: Logger;
  poolFullStatus: 429 | 404;
  /** `https` when the server listens with TLS. */
  scheme: 'http' | 'https';
  /** Upgrades for sessions other nodes hold are tunnelled there. */
  forwarding: NodeForwardingDeps;
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

function decodeSegment(segment: string): string | undefined {
  try {
    return decodeURIComponent(segment);
  } catch {
    return undefined;
  }
}

/** The custom container pool and identifier a URL is for; undefined when the pool serves it itself. */
function targetOf(pools: PoolService, url: string): ProxyTarget | undefined {
  const match = POOL_PATH.exec(url);
  if (!match) return undefined;
  const [, subscription = '', resourceGroup = '', name = '', rest = '/', query = ''] = match;
  if (POOL_OWNED.test(rest)) return undefined;
  const segments = [subscription, resourceGroup, name].map(decodeSegment);
  // A segment that does not decode names no pool; the router answers the request (with a 4xx).
  if (segments.some((s) => s === undefined)) return undefined;
  const manager = pools.manager(poolId(...(segments as [string, string, string])));
  if (manager?.containerType !== 'CustomContainer') return undefined;
  const identifier = requireIdentifier(new URLSearchParams(query).get('identifier') ?? undefined);
  return {
    manager,
    identifier,
    path: `${rest}${query}`,
    prefix: url.slice(0, url.length - rest.length - query.length),
  };
}

/** The request's headers as the container gets them: hop-by-hop ones dropped, X-Forwarded-* added. */
function forwardedHeaders(
  incoming: IncomingMessage,
  scheme: string,
  prefix: string,
  upgrade: boolean,
): IncomingHttpHeaders {
  const headers = endToEnd(incoming);
  const client = incoming.socket.remoteAddress ?? '';
  const before = incoming.headers['x-forwarded-for'];
  headers['x-forwarded-for'] = before ? `${String(before)}, ${client}` : client;
  headers['x-forwarded-proto'] = scheme;
  if (incoming.headers.host) headers['x-forwarded-host'] = incoming.headers.host;
  headers['x-forwarded-prefix'] = prefix;
  if (upgrade) {
    headers.connection = 'Upgrade';
    headers.upgrade = incoming.headers.upgrade ?? '';
  }
  return headers;
}

/** The container's response headers as the client gets them; Node frames the body itself. */
const responseHeaders = (upstream: IncomingMessage) => endToEnd(upstream, ['transfer-encoding']);

const statusClass = (status: number) => `${String(Math.floor(status / 100))}xx`;

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
  const sendError = (res: ServerResponse, error: unknown) => {
    const rendered = renderError(error, { poolFullStatus: deps.poolFullStatus });
    if (res.headersSent) {
      res.destroy();
      return;
    }
    res.writeHead(rendered.status, {
      ...rendered.headers,
      'content-type': 'application/json; charset=utf-8',
    });
    res.end(JSON.stringify(rendered.body));
  };

  /**
   * Forwards one request and resolves once its response has ended, the client has gone, or the
   * credential that opened it was revoked or expired (a long stream does not outlive it).
   */
  const forward = (
    req: IncomingMessage,
    res: ServerResponse,
    target: ProxyTarget,
    reached: { upstream: Upstream; allocation: Allocation; principal: Principal },
  ) =>
    new Promise<void>((resolve) => {
      const { upstream } = reached;
      const started = performance.now();
      let responseSeconds: number | undefined;
      const outbound = httpRequest({
        socketPath: upstream.socketPath,
        agent: agentFor(upstream),
        method: req.method,
        path: target.path,
        headers: forwardedHeaders(req, deps.scheme, target.prefix, false),
      });
      let outcome = 'aborted';
      outbound.on('response', (answer) => {
        responseSeconds = (performance.now() - started) / 1000;
        outcome = statusClass(answer.statusCode ?? 502);
        res.writeHead(answer.statusCode ?? 502, answer.statusMessage, {
          ...responseHeaders(answer),
          ...previousSessionHeaders(reached.allocation),
        });
        answer.pipe(res);
        answer.on('error', () => res.destroy());
      });
      outbound.on('error', (error) => {
        if (res.headersSent || res.destroyed) {
          res.destroy();
          return;
        }
        outcome = 'unreachable';
        void unreachable(upstream, error).then((appError) => sendError(res, appError));
      });
      const unwatch = deps.credentials.watch(reached.principal, () => res.destroy());
      res.on('close', () => {
        unwatch();
        // The client left before the answer was complete: the container's side closes too.
        if (!res.writableFinished) outbound.destroy();
        target.manager.recorder.proxied(outcome, responseSeconds);
        resolve();
      });
      // The head goes now: a client that waits for the answer before sending its body must get one.
      outbound.flushHeaders();
      req.pipe(outbound);
    });

  app.addHook('onRequest', async (request, reply) => {
    const target = targetOf(deps.pools, request.raw.url ?? '');
    if (!target) return;
    authorize(request.principal, 'sessions/execute', target.manager.id);
    deps.rateLimits.checkIdentifier(target.manager.id, target.identifier);
    reply.hijack();
    const { raw: req } = request;
    const res = reply.raw;
    try {
      await target.manager.withSession(
        target.identifier,
        (session, allocation) =>
          forward(req, res, target, {
            upstream: session.instance.upstream!,
            allocation,
            principal: request.principal,
          }),
        { serialize: false },
      );
    } catch (error) {
      if (!(error instanceof AppError)) request.log.error({ err: error }, 'proxy failed');
      sendError(res, error);
    }
  });

  app.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    void tunnel(req, socket, head).catch((error: unknown) => {
      if (!(error instanceof AppError)) deps.log.error({ err: error }, 'proxy upgrade failed');
      writeSocketError(socket, error, { poolFullStatus: deps.poolFullStatus });
    });
  });

  /** Tunnels an upgrade to the container: once it switches protocols, bytes flow both ways untouched. */
  async function tunnel(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    socket.on('error', () => socket.destroy());
    const { principal, forwarded } = await deps.authenticator.authenticateRequest({
      headers: req.headers,
      method: req.method ?? 'GET',
      url: req.url ?? '',
    });
    deps.rateLimits.checkCaller(principal);
    if (!forwarded) {
      const { node, forgetNode } = await routeOf(deps.forwarding, principal, {
        method: req.method ?? 'GET',
        url: req.url ?? '',
      });
      if (node !== undefined) {
        return tunnelToNode(deps.forwarding, node, principal, req, socket, head).catch((error: unknown) => {
          forgetNode?.();
          throw error;
        });
      }
    }
    const target = targetOf(deps.pools, req.url ?? '');
    if (!target)
      throw new AppError(ErrorCode.RouteNotFound, `No route upgrades ${req.url?.split('?')[0] ?? ''}.`);
    authorize(principal, 'sessions/execute', target.manager.id);
    deps.rateLimits.checkIdentifier(target.manager.id, target.identifier);
    const { recorder } = target.manager;
    await target.manager.withSession(
      target.identifier,
      (session, allocation) =>
        new Promise<void>((resolve, reject) => {
          const upstream = session.instance.upstream!;
          const previous = Object.entries(previousSessionHeaders(allocation)).flat();
          const outbound = httpRequest({
            socketPath: upstream.socketPath,
            method: req.method,
            path: target.path,
            headers: forwardedHeaders(req, deps.scheme, target.prefix, true),
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
