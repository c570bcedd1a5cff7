/**
 * @module api/management/access-routes
 * Credentials: API keys (created, listed, revoked by a Contributor of every pool) and short-lived
 * tokens that any caller can mint for a subset of its own grants, e.g. to hand one pool's executor
 * rights to a worker.
 */

import type { FastifyInstance } from 'fastify';

import type { ApiKeys } from '../../auth/api-keys.js';
import { authorize, canDelegate, formatGrant, parseGrant, type Grant } from '../../auth/roles.js';
import type { Tokens } from '../../auth/tokens.js';
import { AppError, ErrorCode } from '../../errors.js';
import type { ApiKeyRow } from '../../store/store.js';
import { field, isRecord, optionalInteger, optionalString } from '../wire.js';
import { accessRoutes } from '../schemas/access.js';

const keyResource = (key: ApiKeyRow) => ({
  id: key.id,
  name: key.name,
  roles: key.roles,
  createdAt: key.createdAt,
  revokedAt: key.revokedAt,
});

function grantsFrom(body: unknown): Grant[] {
  const roles = isRecord(body) ? field(body, 'roles') : undefined;
  if (!Array.isArray(roles) || roles.length === 0 || !roles.every((r) => typeof r === 'string')) {
    throw new AppError(
      ErrorCode.InvalidParameter,
      'roles must be a non-empty array such as ["SessionExecutor:mypool"]',
      {
        target: 'roles',
      },
    );
  }
  return roles.map(parseGrant);
}

export function registerAccessRoutes(
  app: FastifyInstance,
  deps: { apiKeys: ApiKeys; tokens: Tokens; defaultSubscription: string },
): void {
  app.get('/sandpool/whoami', accessRoutes.whoami, (request) => ({
    principal: request.principal.id,
    roles: request.principal.grants.map(formatGrant),
    defaultSubscription: deps.defaultSubscription,
  }));

  app.post('/sandpool/apiKeys', accessRoutes.createKey, async (request, reply) => {
    authorize(request.principal, 'keys/write');
    const grants = grantsFrom(request.body);
    if (!canDelegate(request.principal, grants)) {
      throw new AppError(ErrorCode.AuthorizationFailed, 'A key can carry only roles its creator holds.');
    }
    const name =
      optionalString(isRecord(request.body) ? field(request.body, 'name') : undefined, 'name', 128) ??
      'unnamed';
    const { key, secret } = await deps.apiKeys.create(name, grants);
    return reply.status(201).send({ ...keyResource(key), key: secret });
  });

  app.get('/sandpool/apiKeys', accessRoutes.listKeys, async (request) => {
    authorize(request.principal, 'keys/write');
    return { value: (await deps.apiKeys.list()).map(keyResource) };
  });

  app.delete('/sandpool/apiKeys/:id', accessRoutes.revokeKey, async (request) => {
    authorize(request.principal, 'keys/write');
    const { id } = request.params as { id: string };
    return keyResource(await deps.apiKeys.revoke(id));
  });

  app.post('/sandpool/tokens', accessRoutes.createToken, async (request, reply) => {
    const body = request.body ?? {};
    const grants =
      isRecord(body) && field(body, 'roles') !== undefined ? grantsFrom(body) : request.principal.grants;
    if (!canDelegate(request.principal, grants)) {
      throw new AppError(ErrorCode.AuthorizationFailed, 'A token can carry only roles its requester holds.');
    }
    const ttl =
      optionalInteger(isRecord(body) ? field(body, 'expiresInSeconds') : undefined, 'expiresInSeconds', {
        min: 60,
        max: 86_400,
      }) ?? 3600;
    return reply.status(201).send(await deps.tokens.issue(request.principal.id, grants, ttl));
  });
}
