/**
 * @module api/authentication
 * Every route needs a credential (the health probes, the OpenAPI document and the dashboard's
 * static page excepted): the hook
 * resolves the bearer token to a principal before routing reaches a handler; handlers authorize
 * their action with auth/roles.
 */

import type { FastifyInstance } from 'fastify';

import type { Authenticator } from '../auth/authenticator.js';
import type { Principal } from '../auth/roles.js';
import { DASHBOARD_PREFIX } from './dashboard.js';
import { OPENAPI_PATH } from './openapi.js';

declare module 'fastify' {
  interface FastifyRequest {
    principal: Principal;
  }
}

/** The health probes, the API's own description and the dashboard's page need no credential. */
const PUBLIC_PATHS = new Set(['/', '/dashboard', '/healthz', '/readyz', OPENAPI_PATH]);

const isPublic = (path: string) => PUBLIC_PATHS.has(path) || path.startsWith(DASHBOARD_PREFIX);

export function registerAuthentication(app: FastifyInstance, authenticator: Authenticator): void {
  app.decorateRequest('principal', null as unknown as Principal);
  app.addHook('onRequest', async (request) => {
    if (isPublic(request.url.split('?')[0] ?? '')) return;
    request.principal = await authenticator.authenticate(request.headers.authorization);
  });
}
