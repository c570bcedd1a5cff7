/**
 * @module api/node-forwarding
 * Any node answers any request: one for an identifier whose session another node holds (or that the
 * store places on another node's ready sandbox) is forwarded there before its body is read, and the
 * answer relayed back, both streamed. The caller was authenticated here; the holder gets the
 * principal signed with the cluster's key (auth/forwarded-principal), bound to this request, and
 * authorizes the route's exact action itself. A forwarded request is always served where it lands,
 * so nothing is forwarded twice. WebSocket upgrades take the same way through {@link tunnelToNode}.
 */

import { request as httpRequest, Agent, type IncomingMessage, type ServerResponse } from 'node:http';
import { request as httpsRequest, Agent as HttpsAgent } from 'node:https';
import { connect as netConnect } from 'node:net';
import type { Duplex } from 'node:stream';
import { connect as tlsConnect } from 'node:tls';

import type { FastifyInstance } from 'fastify';

import { poolId } from '../arm-id.js';
import { FORWARDED_PRINCIPAL_HEADER, type ForwardedPrincipals } from '../auth/forwarded-principal.js';
import { authorize, type Principal } from '../auth/roles.js';
import { AppError, ErrorCode } from '../errors.js';
import type { ClusterView } from '../pool/cluster-view.js';
import type { PoolManager } from '../pool/pool-manager.js';
import type { PoolService } from '../pool/pool-service.js';
import { requireIdentifier } from './data/pool-endpoint.js';
import { renderError } from './errors.js';
import { endToEnd } from './hop-by-hop.js';

export interface NodeForwardingDeps {
  pools: PoolService;
  cluster: ClusterView;
  forwarded: ForwardedPrincipals;
  poolFullStatus: 429 | 404;
}

/** `/subscriptions/<s>/resourceGroups/<rg>/sessionPools/<pool>`, the rest of the path, the query. */
const POOL_PATH =
  /^\/subscriptions\/([^/?]+)\/resourceGroups\/([^/?]+)\/sessionPools\/([^/?]+)(\/[^?]*)?(\?.*)?$/;
/**
 * Requests that reach an identifier's session without creating one: they go where the session is,
 * or are answered here when it has none. Every other request with an identifier claims a session.
 */
const REACH_ONLY =
  /^(GET|DELETE) \/session$|^POST \/\.management\/stopSession$|^GET \/\.management\/logs$|^GET \/executions\/[^/]+$/;

/** Keep-alive connections to each node. */
const agents = {
  http: new Agent({ keepAlive: true, maxSockets: 512 }),
  https: new HttpsAgent({ keepAlive: true }),
};

/** The pool and identifier a request is for, and whether it claims a session. */
interface Addressed {
  manager: PoolManager;
  identifier: string;
  claim: boolean;
}

async function addressed(pools: PoolService, method: string, url: string): Promise<Addressed | undefined> {
  const match = POOL_PATH.exec(url);
  if (!match) return undefined;
  const [, subscription = '', resourceGroup = '', name = '', rest = '/', query = ''] = match;
  const identifier = new URLSearchParams(query).get('identifier');
  if (identifier === null) return undefined;
  let id: string;
  try {
    id = poolId(
      decodeURIComponent(subscription),
      decodeURIComponent(resourceGroup),
      decodeURIComponent(name),
    );
  } catch {
    // A path that does not decode names no pool; the router answers it.
    return undefined;
  }
  const manager = await pools.known(id);
  if (!manager) return undefined;
  return { manager, identifier, claim: !REACH_ONLY.test(`${method} ${rest}`) };
}

/**
 * Where a request goes: `node` for another node (with `forgetNode`, for when it failed there: the
 * next request asks the store again); here otherwise, with `returnUnused` when it
 * claimed a new session here (called once the response has left, it puts back a claim the handler
 * refused before using). Claims (or finds) the identifier's session after checking the caller may:
 * the weakest action the route can need, the holder checks the exact one.
 */
export async function routeOf(
  deps: NodeForwardingDeps,
  principal: Principal,
  request: { method: string; url: string },
): Promise<{ node?: string; forgetNode?: () => void; returnUnused?: () => Promise<void> }> {
  const target = await addressed(deps.pools, request.method, request.url);
  if (!target) return {};
  const { manager, claim } = target;
  // Authorized before the identifier is read: a caller without a role learns nothing of the pool.
  authorize(principal, claim ? 'sessions/execute' : 'sessions/read', manager.id);
  const identifier = requireIdentifier(target.identifier);
  const node = await manager.route(identifier, { claim });
  if (node !== undefined) return { node, forgetNode: () => manager.forgetHolder(identifier) };
  return claim ? { returnUnused: () => manager.returnUnused(identifier) } : {};
}

function peerUrl(cluster: ClusterView, node: string, path: string): URL {
  const peer = cluster.node(node);
  if (!peer) {
    throw new AppError(
      ErrorCode.NodeUnreachable,
      `node ${node} holds the session but has not registered its URL`,
    );
  }
  return new URL(path, peer.url);
}

export function registerNodeForwarding(app: FastifyInstance, deps: NodeForwardingDeps): void {
  app.addHook('onRequest', async (request, reply) => {
    if (request.forwardedByPeer || !(request.principal as Principal | null)) return;
    const url = request.raw.url ?? '';
    const { node, forgetNode, returnUnused } = await routeOf(deps, request.principal, {
      method: request.method,
      url,
    });
    if (returnUnused) {
      reply.raw.once('close', () => {
        returnUnused().catch((error: unknown) => request.log.error({ err: error }, 'session.return failed'));
      });
    }
    if (node === undefined) return;
    const target = peerUrl(deps.cluster, node, url);
    reply.hijack();
    relay(request.raw, reply.raw, {
      target,
      signed: deps.forwarded.sign(request.principal, { method: request.method, url }),
      failed: forgetNode!,
      poolFullStatus: deps.poolFullStatus,
    });
  });
}

/**
 * Sends the request on to `target` and the answer back, both streamed; `failed` is called when the
 * node did not answer or answered with a server error (it may no longer hold the session).
 */
function relay(
  req: IncomingMessage,
  res: ServerResponse,
  forward: { target: URL; signed: string; failed: () => void; poolFullStatus: 429 | 404 },
): void {
  const { target, signed, failed } = forward;
  const https = target.protocol === 'https:';
  const outbound = (https ? httpsRequest : httpRequest)(target, {
    method: req.method,
    agent: https ? agents.https : agents.http,
    headers: { ...endToEnd(req), host: target.host, [FORWARDED_PRINCIPAL_HEADER]: signed },
  });
  outbound.on('response', (answer) => {
    if ((answer.statusCode ?? 502) >= 500) failed();
    res.writeHead(answer.statusCode ?? 502, answer.statusMessage, endToEnd(answer, ['transfer-encoding']));
    answer.pipe(res);
    answer.on('error', () => res.destroy());
  });
  outbound.on('error', (error) => {
    failed();
    if (res.headersSent || res.destroyed) {
      res.destroy();
      return;
    }
    const rendered = renderError(
      new AppError(
        ErrorCode.NodeUnreachable,
        `the node holding the session (${target.host}) did not answer: ${error.message}; if it is lost, its sessions end within its lease and a retry gets a new one`,
      ),
      { poolFullStatus: forward.poolFullStatus },
    );
    res.writeHead(rendered.status, {
      ...rendered.headers,
      'content-type': 'application/json; charset=utf-8',
    });
    res.end(JSON.stringify(rendered.body));
  });
  res.on('close', () => {
    // The client left before the answer was complete: the holder's side closes too.
    if (!res.writableFinished) outbound.destroy();
  });
  req.pipe(outbound);
}

/**
 * Tunnels a WebSocket (any upgrade) to the node that holds the session: the request head goes on
 * with the signed principal in place of the credential, then bytes flow both ways untouched.
 */
export function tunnelToNode(
  deps: NodeForwardingDeps,
  node: string,
  principal: Principal,
  req: IncomingMessage,
  socket: Duplex,
  head: Buffer,
): Promise<void> {
  const url = req.url ?? '/';
  const target = peerUrl(deps.cluster, node, url);
  const signed = deps.forwarded.sign(principal, { method: req.method ?? 'GET', url });
  return new Promise((resolve, reject) => {
    const port = Number(target.port || (target.protocol === 'https:' ? 443 : 80));
    const upstream =
      target.protocol === 'https:'
        ? tlsConnect({ host: target.hostname, port, servername: target.hostname })
        : netConnect({ host: target.hostname, port });
    upstream.once('error', (error: Error) =>
      reject(
        new AppError(
          ErrorCode.NodeUnreachable,
          `the node holding the session did not answer: ${error.message}`,
        ),
      ),
    );
    upstream.once(target.protocol === 'https:' ? 'secureConnect' : 'connect', () => {
      const lines = [`${req.method ?? 'GET'} ${url} HTTP/1.1`];
      for (let i = 0; i < req.rawHeaders.length; i += 2) {
        const name = req.rawHeaders[i]!;
        const lower = name.toLowerCase();
        if (lower === 'authorization' || lower === FORWARDED_PRINCIPAL_HEADER || lower === 'host') continue;
        lines.push(`${name}: ${req.rawHeaders[i + 1]!}`);
      }
      lines.push(`Host: ${target.host}`, `${FORWARDED_PRINCIPAL_HEADER}: ${signed}`);
      upstream.write(`${lines.join('\r\n')}\r\n\r\n`);
      if (head.length > 0) upstream.write(head);
      upstream.pipe(socket).pipe(upstream);
      const close = () => {
        socket.destroy();
        upstream.destroy();
        resolve();
      };
      socket.on('close', close);
      upstream.on('close', close);
      upstream.on('error', close);
    });
  });
}
