/**
 * @module api/management/access-routes
 * Credentials: API keys, and short-lived tokens that any caller can mint for a subset of its own
 * grants, e.g. to hand one pool's executor rights to a worker. A key is managed (created, listed,
 * revoked) by whoever holds Contributor over every scope it grants and holds the grants themselves,
 * so a resource group's Contributor manages its group's keys and never sees another group's.
 */

import type { FastifyInstance } from 'fastify';

import { e2bFormOf, type ApiKeys } from '../../auth/api-keys.js';
import {
  allows,
  canDelegate,
  formatGrant,
  parseGrant,
  parseGrants,
  type Grant,
  type Principal,
} from '../../auth/roles.js';
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
  expiresAt: key.expiresAt,
});

function grantsFrom(body: unknown): Grant[] {
  const roles = isRecord(body) ? field(body, 'roles') : undefined;
  if (!Array.isArray(roles) || roles.length === 0 || !roles.every((r) => typeof r === 'string')) {
    throw new AppError(
      ErrorCode.InvalidParameter,
      'roles must be a non-empty array such as ["SessionExecutor:/subscriptions/<guid>/resourceGroups/<group>"]',
      {
        target: 'roles',
      },
    );
  }
  return roles.map(parseGrant);
}

/** Whether the principal may manage a key carrying `grants`: Contributor over each scope, and each grant its own. */
function managesKey(principal: Principal, grants: Grant[]): boolean {
  // A key whose grants no longer parse (an older form) is left to those who manage every key.
  if (grants.length === 0) return allows(principal, 'keys/write');
  return (
    grants.every((grant) => allows(principal, 'keys/write', grant.scope)) && canDelegate(principal, grants)
  );
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
    const grants = grantsFrom(request.body);
    if (!managesKey(request.principal, grants)) {
      throw new AppError(
        ErrorCode.AuthorizationFailed,
        'A key can carry only roles its creator holds, at scopes where the creator is a Contributor.',
      );
    }
    const name =
      optionalString(isRecord(request.body) ? field(request.body, 'name') : undefined, 'name', 128) ??
      'unnamed';
    const { key, secret } = await deps.apiKeys.create(name, grants, { maker: request.principal });
    return reply.status(201).send({ ...keyResource(key), key: secret, e2bKey: e2bFormOf(secret) });
  });

  app.get('/sandpool/apiKeys', accessRoutes.listKeys, async (request) => {
    const keys = await deps.apiKeys.list();
    return {
      value: keys.filter((key) => managesKey(request.principal, parseGrants(key.roles))).map(keyResource),
    };
  });

  app.delete('/sandpool/apiKeys/:id', accessRoutes.revokeKey, async (request) => {
    const { id } = request.params as { id: string };
    const key = await deps.apiKeys.get(id);
    // A key the caller may not manage is one it cannot tell from one that does not exist.
    if (!key || !managesKey(request.principal, parseGrants(key.roles))) {
      throw new AppError(ErrorCode.ApiKeyNotFound, `no API key with id ${id}`);
    }
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
    return reply.status(201).send(await deps.tokens.issue(request.principal, grants, ttl));
  });
}
