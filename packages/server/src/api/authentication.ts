/**
 * @module api/authentication
 * Every route needs a credential (the health probes, the OpenAPI document and the dashboard's
 * static page excepted): the hook resolves the bearer token to a principal before a handler runs;
 * handlers authorize their action with auth/roles. Whether a request is public is decided by the
 * route it matched, never by its raw path, so `/dashboard/../sandpool/…` cannot borrow the page's
 * exemption.
 */

import type { FastifyInstance } from 'fastify';

import type { Authenticator } from '../auth/authenticator.js';
import type { Principal } from '../auth/roles.js';
import { DASHBOARD_PREFIX } from './dashboard.js';
import { OPENAPI_PATH } from './openapi.js';
import { POOL_ENDPOINT } from './data/pool-endpoint.js';
import { PLATFORM_MCP_PATH } from './schemas/mcp.js';

declare module 'fastify' {
  interface FastifyRequest {
    principal: Principal;
    /** Another node of the cluster forwarded the request: it is served here. */
    forwardedByPeer: boolean;
  }
}

/** Routes (as registered) of the health probes, the API's own description and the dashboard's page. */
const PUBLIC_ROUTES = new Set([
  '/',
  '/healthz',
  '/readyz',
  OPENAPI_PATH,
  '/dashboard',
  `${DASHBOARD_PREFIX}*`,
]);

/**
 * Routes that take a credential of their own in place of a bearer one: the platform MCP server's key
 * (`x-ms-apikey`), which its handler checks. A bearer credential sent there is authenticated as
 * anywhere else.
 */
const OWN_CREDENTIAL_ROUTES = new Set([`${POOL_ENDPOINT}${PLATFORM_MCP_PATH}`]);

export function registerAuthentication(app: FastifyInstance, authenticator: Authenticator): void {
  app.decorateRequest('principal', null as unknown as Principal);
  app.decorateRequest('forwardedByPeer', false);
  app.addHook('onRequest', async (request) => {
    const route = request.routeOptions.url;
    if (route !== undefined && PUBLIC_ROUTES.has(route)) return;
    if (
      route !== undefined &&
      OWN_CREDENTIAL_ROUTES.has(route) &&
      request.headers.authorization === undefined
    )
      return;
    const { principal, forwarded } = await authenticator.authenticateRequest({
      headers: request.headers,
      method: request.method,
      url: request.raw.url ?? '',
    });
    request.principal = principal;
    request.forwardedByPeer = forwarded;
  });
}
