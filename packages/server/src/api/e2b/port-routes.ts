/**
 * @module api/e2b/port-routes
 * A sandbox's own ports beyond envd's and the code interpreter's: what its programs listen on (a
 * server a command started), as E2B's SDKs address it (`getHost(port)`, or the port header with
 * one sandbox URL). Each request takes the sandbox's traffic or access token and is passed on
 * through a host socket bridged to that port of the sandbox's loopback, where the sandbox is held;
 * bodies stream both ways. A port nothing listens on answers E2B's 502.
 */

import { Agent } from 'node:http';

import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

import { AppError, ErrorCode } from '../../errors.js';
import type { Session } from '../../pool/pool-manager.js';
import { writeResponseError } from '../errors.js';
import { sandboxRoutes } from '../schemas/e2b.js';
import { forwardUpstream, forwardedHeaders } from '../upstream-request.js';
import { reachSandbox, type SandboxReachDeps } from './sandbox-reach.js';
import { ENVD_PORT, INTERPRETER_PORT, SANDBOX_PREFIX } from './sandbox-routing.js';

export interface PortRoutesDeps extends SandboxReachDeps {
  /** `https` when the server listens with TLS. */
  scheme: 'http' | 'https';
  poolFullStatus: 429 | 404;
}

/** The port a path names, if it is one a program may serve (not envd's, not the interpreter's). */
function programPort(text: string): number | undefined {
  const port = /^\d{1,5}$/.test(text) ? Number(text) : NaN;
  return port >= 1 && port <= 65_535 && port !== ENVD_PORT && port !== INTERPRETER_PORT ? port : undefined;
}

export function registerSandboxPortRoutes(app: FastifyInstance, deps: PortRoutesDeps): void {
  // Keep-alive connections through each bridge, so a request costs no new connection; they go with
  // their session.
  const agents = new WeakMap<Session, Map<number, Agent>>();
  const agentFor = (session: Session, port: number) => {
    let ports = agents.get(session);
    if (!ports) {
      ports = new Map();
      agents.set(session, ports);
    }
    let agent = ports.get(port);
    if (!agent) {
      agent = new Agent({ keepAlive: true, maxSockets: 64 });
      ports.set(port, agent);
    }
    return agent;
  };

  // Before the body is read (after the request path's own hook): it streams to the program.
  const pass = async (request: FastifyRequest, reply: FastifyReply) => {
    const { port: text } = request.params as { port: string };
    const port = programPort(text);
    if (port === undefined) {
      throw new AppError(
        ErrorCode.RouteNotFound,
        `No route serves ${request.method} ${request.url.split('?')[0] ?? ''}.`,
      );
    }
    const reached = await reachSandbox(deps, request, reply);
    if (!reached) return;
    const { manager, session } = reached;
    const url = request.raw.url ?? '';
    const path = url.slice(`${SANDBOX_PREFIX}/${text}`.length) || '/';
    reply.hijack();
    await deps.sandboxes
      .reachPort(manager, session, port, (socketPath) =>
        forwardUpstream(
          request.raw,
          reply.raw,
          {
            socketPath,
            agent: agentFor(session, port),
            path: path.startsWith('/') ? path : `/${path}`,
            headers: forwardedHeaders(request.raw, deps.scheme, undefined),
          },
          () =>
            writeResponseError(
              reply.raw,
              new AppError(ErrorCode.SandboxPortClosed, 'The sandbox is running but port is not open', {
                details: { sandboxId: session.identifier, port },
              }),
              { poolFullStatus: deps.poolFullStatus, form: 'e2b' },
            ),
        ),
      )
      .catch((error: unknown) => {
        if (!(error instanceof AppError)) request.log.error({ err: error }, 'sandbox port failed');
        writeResponseError(reply.raw, error, { poolFullStatus: deps.poolFullStatus, form: 'e2b' });
      });
  };
  const answered = () => undefined;
  // Any method, any path: a program's own API, which the OpenAPI document does not describe (as the
  // session proxy's catch-all is not).
  const { config, schema } = sandboxRoutes.port;
  for (const url of [`${SANDBOX_PREFIX}/:port`, `${SANDBOX_PREFIX}/:port/*`]) {
    app.all(url, { config, schema: { ...schema, hide: true }, onRequest: pass }, answered);
  }
}
