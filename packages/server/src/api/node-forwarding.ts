/**
 * @module api/node-forwarding
 * How a request reaches the node that holds its session: the request goes on with the caller's
 * principal signed by the cluster's key (auth/forwarded-principal) in place of its credential, bound
 * to this request, with the placement when this node placed a new session there just now; the
 * holder serves it where it lands, so nothing is forwarded twice. A body already read (JSON) goes
 * whole; one still unread (an upload, a proxied body) streams; the answer streams back.
 * WebSocket upgrades are tunnelled through {@link tunnelToNode}. Which requests go, and where, is
 * the request path's to decide (api/request-path).
 */

import { request as httpRequest, Agent, type IncomingMessage, type ServerResponse } from 'node:http';
import { request as httpsRequest, Agent as HttpsAgent } from 'node:https';
import { connect as netConnect } from 'node:net';
import type { Duplex } from 'node:stream';
import { connect as tlsConnect } from 'node:tls';

import { FORWARDED_PRINCIPAL_HEADER, type ForwardedPrincipals } from '../auth/forwarded-principal.js';
import type { Principal } from '../auth/roles.js';
import { AppError, ErrorCode } from '../errors.js';
import type { ClusterView } from '../pool/cluster-view.js';
import type { SessionRow } from '../store/store.js';
import { renderError } from './errors.js';
import { endToEnd } from './hop-by-hop.js';

export interface NodeForwardingDeps {
  cluster: ClusterView;
  forwarded: ForwardedPrincipals;
  poolFullStatus: 429 | 404;
}

/** Keep-alive connections to each node. */
const agents = {
  http: new Agent({ keepAlive: true, maxSockets: 512 }),
  https: new HttpsAgent({ keepAlive: true }),
};

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

export interface Forward {
  /** The node that holds the session. */
  node: string;
  principal: Principal;
  /** The new session this node placed there for the request. */
  placed: SessionRow | undefined;
  /** The body, when it was read here already; else it streams from the request. */
  body: Buffer | undefined;
  /** Called when the node did not answer or answered with a server error (it may no longer hold it). */
  failed: () => void;
}

/** Sends the request on to the node that holds its session and relays the answer back. */
export function forwardToNode(
  deps: NodeForwardingDeps,
  req: IncomingMessage,
  res: ServerResponse,
  forward: Forward,
): void {
  const url = req.url ?? '/';
  const target = peerUrl(deps.cluster, forward.node, url);
  const signed = deps.forwarded.sign(forward.principal, { method: req.method ?? 'GET', url }, forward.placed);
  const https = target.protocol === 'https:';
  const headers = { ...endToEnd(req), host: target.host, [FORWARDED_PRINCIPAL_HEADER]: signed };
  if (forward.body) {
    delete headers['transfer-encoding'];
    headers['content-length'] = String(forward.body.length);
  }
  const outbound = (https ? httpsRequest : httpRequest)(target, {
    method: req.method,
    agent: https ? agents.https : agents.http,
    headers,
  });
  outbound.on('response', (answer) => {
    if ((answer.statusCode ?? 502) >= 500) forward.failed();
    res.writeHead(answer.statusCode ?? 502, answer.statusMessage, endToEnd(answer, ['transfer-encoding']));
    answer.pipe(res);
    answer.on('error', () => res.destroy());
  });
  outbound.on('error', (error) => {
    forward.failed();
    if (res.headersSent || res.destroyed) {
      res.destroy();
      return;
    }
    const rendered = renderError(
      new AppError(
        ErrorCode.NodeUnreachable,
        `the node holding the session (${target.host}) did not answer: ${error.message}; if it is lost, its sessions end within its lease and a retry gets a new one`,
      ),
      { poolFullStatus: deps.poolFullStatus },
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
  if (forward.body) outbound.end(forward.body);
  else req.pipe(outbound);
}

/**
 * Tunnels a WebSocket (any upgrade) to the node that holds the session: the request head goes on
 * with the signed principal in place of the credential, then bytes flow both ways untouched.
 */
export function tunnelToNode(
  deps: NodeForwardingDeps,
  forward: Omit<Forward, 'body' | 'failed'>,
  req: IncomingMessage,
  socket: Duplex,
  head: Buffer,
): Promise<void> {
  const url = req.url ?? '/';
  const target = peerUrl(deps.cluster, forward.node, url);
  const signed = deps.forwarded.sign(forward.principal, { method: req.method ?? 'GET', url }, forward.placed);
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
