/**
 * @module api/request-path
 * The one way every request goes, driven by what its route declares (`access` and `session`, beside
 * its schema in api/schemas): authenticate → authorize the exact action → validate → charge the
 * caller's and the identifier's limits → claim or find the session → serve here, or forward to the
 * node that holds it; the audit and metrics hooks then record it. Every front door (Azure's API,
 * the MCP servers, the session proxy, WebSocket upgrades) takes it.
 *
 * The first steps run as the request arrives, decided by the route it matched (never its raw path)
 * and before its body is read, so a caller without a role learns nothing and spends nothing. The
 * route's handler then reads and checks the request, and calls {@link SessionSteps.reach}, which
 * charges the identifier and claims or finds its session: a request is validated before it costs a
 * session, and nothing is claimed that its handler does not serve.
 */

import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';

import type { FastifyInstance, FastifyReply, FastifyRequest, RouteOptions } from 'fastify';

import { poolId, validateResourceGroup, validateSubscription } from '../arm-id.js';
import type { Authenticator } from '../auth/authenticator.js';
import {
  FORWARDED_PRINCIPAL_HEADER,
  type Forwarded,
  type ForwardedPrincipals,
} from '../auth/forwarded-principal.js';
import { authorize, type Principal } from '../auth/roles.js';
import { AppError, ErrorCode } from '../errors.js';
import type { ClusterView } from '../pool/cluster-view.js';
import type { Claimed, PoolManager } from '../pool/pool-manager.js';
import { forwardToNode, tunnelToNode, type NodeForwardingDeps } from './node-forwarding.js';
import type { RateLimits } from './rate-limit.js';
import type { Access, SessionEffect } from './schemas/common.js';

/** A route as it declared itself: what the authorization matrix (SECURITY.md) is made of. */
export interface DeclaredRoute {
  /** Its methods (HEAD, which Fastify adds beside GET, left out). */
  methods: string[];
  url: string;
  access: Access;
  session: SessionEffect | undefined;
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Every route with its declaration, once the app is ready. */
    declaredRoutes: () => DeclaredRoute[];
  }
  interface FastifyRequest {
    principal: Principal;
    /** What the node that forwarded the request signed with it; undefined for a client's own. */
    forwarded: Forwarded | undefined;
    /** A JSON body's bytes as they came, for a request forwarded after its body was read. */
    rawBody: Buffer | undefined;
  }
}

export interface RequestPathDeps {
  authenticator: Authenticator;
  rateLimits: RateLimits;
  cluster: ClusterView;
  forwardedPrincipals: ForwardedPrincipals;
  poolFullStatus: 429 | 404;
  /**
   * Who a sandbox's own token stands for (routes of `sandbox` or `sandboxTraffic` access;
   * api/e2b/sandbox-credential), the traffic token taken where the route says.
   */
  sandboxCredential: (
    request: { headers: IncomingMessage['headers']; method: string; url: string },
    takesTraffic: boolean,
  ) => Promise<Principal>;
}

/** The session a request names: its pool and identifier. */
export interface SessionTarget {
  manager: PoolManager;
  identifier: string;
}

type Params = Record<string, string | undefined>;

/** The ARM id of the pool a route's path names (`:pool` on the data plane, `:name` on ARM's). */
function poolOf(params: Params): string {
  const name = params.pool ?? params.name;
  if (params.subscription === undefined || params.resourceGroup === undefined || name === undefined) {
    throw new Error('a route that declares access on a pool names no pool in its path');
  }
  return poolId(params.subscription, params.resourceGroup, name);
}

/**
 * The first steps, as a request (or an upgrade) arrives at its route: who the caller is, and its own
 * limit. Undefined for a route anyone may call, and for one that takes a credential of its own,
 * sent without a bearer one.
 */
async function identify(
  deps: RequestPathDeps,
  access: Access | undefined,
  request: { headers: IncomingMessage['headers']; method: string; url: string },
): Promise<{ principal: Principal; forwarded: Forwarded | undefined } | undefined> {
  if (access === 'public') return undefined;
  if (access === 'poolKey' && request.headers.authorization === undefined) return undefined;
  const identified =
    (access === 'sandbox' || access === 'sandboxTraffic') &&
    request.headers[FORWARDED_PRINCIPAL_HEADER] === undefined
      ? {
          principal: await deps.sandboxCredential(request, access === 'sandboxTraffic'),
          forwarded: undefined,
        }
      : await deps.authenticator.authenticateRequest(request);
  // A request another node forwarded was charged there.
  if (!identified.forwarded) deps.rateLimits.checkCaller(identified.principal);
  return identified;
}

/** The path's segments, then the route's declared access, for the identified caller. */
function permit(principal: Principal, access: Access | undefined, params: Params): void {
  // Every subscription and resource group a path names is one Azure would accept, before any route
  // looks it up or creates under it.
  if (params.subscription !== undefined) validateSubscription(params.subscription);
  if (params.resourceGroup !== undefined) validateResourceGroup(params.resourceGroup);
  if (typeof access !== 'object') return;
  const scope = access.on === 'pool' ? poolOf(params) : undefined;
  for (const action of [access.action].flat()) authorize(principal, action, scope);
}

export function registerRequestPath(app: FastifyInstance, deps: RequestPathDeps): SessionSteps {
  app.decorateRequest('principal', null as unknown as Principal);
  app.decorateRequest('forwarded', undefined);
  app.decorateRequest('rawBody', undefined);

  // Every route says who may call it: one that does not is a mistake, found when the server starts.
  const routes: RouteOptions[] = [];
  app.addHook('onRoute', (route) => {
    routes.push(route);
  });
  app.decorate('declaredRoutes', () =>
    routes
      .map((route) => ({
        methods: [route.method].flat().filter((method) => method !== 'HEAD'),
        url: route.url,
        access: route.config!.access!,
        session: route.config?.session,
      }))
      .filter((route) => route.methods.length > 0),
  );
  app.addHook('onReady', (done) => {
    const undeclared = routes.filter((route) => route.config?.access === undefined);
    done(
      undeclared.length === 0
        ? undefined
        : new Error(
            `routes that declare no access: ${undeclared.map((r) => `${String(r.method)} ${r.url}`).join(', ')}`,
          ),
    );
  });

  app.addHook('onRequest', async (request) => {
    const { access } = request.routeOptions.config;
    const identified = await identify(deps, access, {
      headers: request.headers,
      method: request.method,
      url: request.raw.url ?? '',
    });
    if (!identified) return;
    // Known before it is refused: the audit names who was.
    request.principal = identified.principal;
    request.forwarded = identified.forwarded;
    permit(identified.principal, access, request.params as Params);
  });
  return new SessionSteps(deps);
}

/** The last steps of a request that names a session: its identifier's limit, its session, its node. */
export class SessionSteps {
  private readonly forwarding: NodeForwardingDeps;

  constructor(private readonly deps: RequestPathDeps) {
    this.forwarding = {
      cluster: deps.cluster,
      forwarded: deps.forwardedPrincipals,
      poolFullStatus: deps.poolFullStatus,
    };
  }

  /**
   * For a route that `creates` its session: charges the identifier's limit, then claims its session
   * (or finds the live one). Answers the session here, or undefined once the request was forwarded to
   * the node that holds it (the reply is the relay's then).
   */
  async claim(
    request: FastifyRequest,
    reply: FastifyReply,
    target: SessionTarget,
  ): Promise<Claimed | undefined> {
    const reached = await this.reach(request, reply, target, 'creates');
    return reached && reached.claimed;
  }

  /**
   * For a route that `reaches` a live session only: charges the identifier's limit and finds its
   * session. Answers it here (undefined when the identifier has none), or undefined once the request
   * was forwarded to the node that holds it.
   */
  find(
    request: FastifyRequest,
    reply: FastifyReply,
    target: SessionTarget,
  ): Promise<{ claimed: Claimed | undefined } | undefined> {
    return this.reach(request, reply, target, 'reaches');
  }

  private reach(
    request: FastifyRequest,
    reply: FastifyReply,
    target: SessionTarget,
    effect: SessionEffect,
  ): Promise<{ claimed: Claimed | undefined } | undefined> {
    const declared = request.routeOptions.config.session;
    if (declared !== effect) {
      throw new Error(
        `route ${request.routeOptions.url ?? ''} declares session ${String(declared)}, not ${effect}`,
      );
    }
    return this.reachAs(request, reply, target, effect);
  }

  /**
   * {@link claim} and {@link find} without the route's declaration: for the session proxy, which
   * serves every route of a custom container pool as the container's own, creating its session.
   */
  async reachAs(
    request: FastifyRequest,
    reply: FastifyReply,
    target: SessionTarget,
    effect: SessionEffect,
  ): Promise<{ claimed: Claimed | undefined } | undefined> {
    const reach = await this.locate(request.principal, request.forwarded, target, effect);
    if ('node' in reach) {
      reply.hijack();
      forwardToNode(this.forwarding, request.raw, reply.raw, {
        node: reach.node,
        principal: request.principal,
        placed: reach.placed,
        body: request.rawBody,
        failed: () => target.manager.forgetHolder(target.identifier),
      });
      return undefined;
    }
    return { claimed: 'here' in reach ? reach.here : undefined };
  }

  /**
   * The same steps for an upgrade (a WebSocket) to a route that `creates` its session: admitted as
   * any request is, then `target` names its session (read once the caller is admitted), which is
   * claimed here, or undefined once the upgrade was tunnelled to the node that holds it.
   */
  async reachForUpgrade<T extends SessionTarget>(
    req: IncomingMessage,
    socket: Duplex,
    head: Buffer,
    route: { access: Access; params: Params },
    target: () => Promise<T>,
  ): Promise<{ claimed: Claimed; principal: Principal; target: T } | undefined> {
    const identified = await identify(this.deps, route.access, {
      headers: req.headers,
      method: req.method ?? 'GET',
      url: req.url ?? '',
    });
    if (!identified) throw new Error('an upgrade reaches a session only with a credential');
    const { principal, forwarded } = identified;
    permit(principal, route.access, route.params);
    const named = await target();
    const reach = await this.locate(principal, forwarded, named, 'creates');
    if ('here' in reach) return { claimed: reach.here, principal, target: named };
    if (!('node' in reach)) throw new Error('a claim found no session');
    await tunnelToNode(
      this.forwarding,
      { node: reach.node, principal, placed: reach.placed },
      req,
      socket,
      head,
    ).catch((error: unknown) => {
      named.manager.forgetHolder(named.identifier);
      throw error;
    });
    return undefined;
  }

  private locate(
    principal: Principal,
    forwarded: Forwarded | undefined,
    { manager, identifier }: SessionTarget,
    effect: SessionEffect,
  ) {
    // A sandbox's own token reaches that sandbox alone.
    if (principal.sandbox !== undefined && principal.sandbox !== identifier) {
      throw new AppError(ErrorCode.AuthorizationFailed, 'This token belongs to another sandbox.');
    }
    // A request another node forwarded was charged there, and is served here.
    if (!forwarded) this.deps.rateLimits.checkIdentifier(manager.id, identifier);
    return manager.reach(identifier, {
      create: effect === 'creates',
      placed: forwarded?.placed,
      stay: forwarded !== undefined,
    });
  }
}
