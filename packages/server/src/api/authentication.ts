/**
 * @module api/authentication
 * Every route needs a credential (the health probes and the OpenAPI document excepted): the hook
 * resolves the bearer token to a principal before routing reaches a handler; handlers authorize
 * their action with auth/roles.
 */

import type { FastifyInstance } from 'fastify';

import type { Authenticator } from '../auth/authenticator.js';
import type { Principal } from '../auth/roles.js';
import { OPENAPI_PATH } from './openapi.js';

declare module 'fastify' {
  interface FastifyRequest {
    principal: Principal;
  }
}

/** The health probes and the API's own description need no credential. */
const PUBLIC_PATHS = new Set(['/healthz', '/readyz', OPENAPI_PATH]);

export function registerAuthentication(app: FastifyInstance, authenticator: Authenticator): void {
  app.decorateRequest('principal', null as unknown as Principal);
  app.addHook('onRequest', async (request) => {
    if (PUBLIC_PATHS.has(request.url.split('?')[0] ?? '')) return;
    request.principal = await authenticator.authenticate(request.headers.authorization);
  });
}
