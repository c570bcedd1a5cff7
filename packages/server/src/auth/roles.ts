/**
 * @module auth/roles
 * Who may do what, and where. A grant is a role at a scope, written `Role` (every pool of this
 * server) or `Role:<ARM id>`, the id of a subscription, a resource group or a session pool
 * (`SessionExecutor:/subscriptions/<guid>/resourceGroups/rg/providers/Microsoft.App/sessionPools/p`).
 * Scopes nest as Azure's do: a grant on a resource group reaches every pool in it, and a grant never
 * reaches a pool outside its scope, whatever that pool is called. The roles mirror Azure's: Session
 * Executor for the data plane, Contributor for managing pools, Reader for looking.
 */

import { parseScope, scopeContains } from '../arm-id.js';
import { AppError, ErrorCode } from '../errors.js';

export type Role = 'SessionExecutor' | 'Contributor' | 'Reader';

export type Action =
  /** Read pools, their operations and events. */
  | 'pools/read'
  /** Create, update and delete pools. */
  | 'pools/write'
  /** Run code and move files in sessions, read executions' output and containers' console. */
  | 'sessions/execute'
  /** End a session before its time (its owner, or an operator looking after the pool). */
  | 'sessions/stop'
  /** See sessions and pool metadata. */
  | 'sessions/read'
  /** Issue and revoke API keys for the scopes one holds Contributor on. */
  | 'keys/write';

export interface Grant {
  role: Role;
  /** A canonical ARM id (see arm-id.ts), or '*' for every pool of this server. */
  scope: string;
}

export interface Principal {
  /** `key:<id>` for API keys, `<iss>#<sub>` for tokens. */
  id: string;
  grants: Grant[];
  /** The API key the credential is, or was derived from: revoking it ends the credential. */
  keyId?: string;
  /** When the credential stops working (epoch ms): a token's, or a key made by one. */
  expiresAt?: number;
  /** An API key made by a derived credential: it dies with the key named in `keyId`'s lineage. */
  derived?: boolean;
  /**
   * The credential at the start of this one's lineage (the key or identity its tokens and keys came
   * from), whose budget its requests spend; its own `id` when absent.
   */
  root?: string;
  /** A sandbox's own token: its principal reaches that session (its identifier) and no other. */
  sandbox?: string;
}

/** Whose rate limits and quotas a principal's requests count against: the start of its lineage. */
export const rootOf = (principal: Principal): string => principal.root ?? principal.id;

const PERMISSIONS: Record<Role, readonly Action[]> = {
  SessionExecutor: ['sessions/execute', 'sessions/stop', 'sessions/read'],
  Contributor: ['pools/read', 'pools/write', 'sessions/stop', 'sessions/read', 'keys/write'],
  Reader: ['pools/read', 'sessions/read'],
};

/** Spellings people use for each role, compared without spaces and case. */
const ALIASES: Record<string, Role> = {
  sessionexecutor: 'SessionExecutor',
  azurecontainerappssessionexecutor: 'SessionExecutor',
  sessioncreator: 'SessionExecutor',
  contributor: 'Contributor',
  reader: 'Reader',
};

export function parseGrant(text: string): Grant {
  // ARM ids hold no colon: the first one separates the role from its scope.
  const colon = text.indexOf(':');
  const rolePart = colon < 0 ? text : text.slice(0, colon);
  const scopeText = colon < 0 ? '*' : text.slice(colon + 1);
  const role = ALIASES[rolePart.replace(/\s+/g, '').toLowerCase()];
  const scope = scopeText === '*' ? '*' : parseScope(scopeText);
  if (!role || scope === undefined) {
    throw new AppError(
      ErrorCode.InvalidParameter,
      `invalid role grant ${JSON.stringify(text)}: use SessionExecutor, Contributor or Reader, optionally followed by ` +
        ':<ARM id> of a subscription, resource group or session pool, e.g. ' +
        'SessionExecutor:/subscriptions/<guid>/resourceGroups/<group>/providers/Microsoft.App/sessionPools/<pool>',
      { target: 'roles' },
    );
  }
  return { role, scope };
}

/** The grants among `texts` that parse; the rest grant nothing (other applications' roles, old forms). */
export function parseGrants(texts: readonly unknown[]): Grant[] {
  const grants: Grant[] = [];
  for (const text of texts) {
    if (typeof text !== 'string') continue;
    try {
      grants.push(parseGrant(text));
    } catch {
      continue;
    }
  }
  return grants;
}

export const formatGrant = (grant: Grant) =>
  grant.scope === '*' ? grant.role : `${grant.role}:${grant.scope}`;

/** Whether the principal may perform `action` on the resource `id` (on everything when omitted). */
export function allows(principal: Principal, action: Action, id = '*'): boolean {
  return principal.grants.some(
    (grant) => PERMISSIONS[grant.role].includes(action) && scopeContains(grant.scope, id),
  );
}

/** Whether the principal may perform `action` on something inside the scope `id`. */
export function allowsWithin(principal: Principal, action: Action, id: string): boolean {
  return principal.grants.some(
    (grant) =>
      PERMISSIONS[grant.role].includes(action) &&
      (scopeContains(grant.scope, id) || scopeContains(id, grant.scope)),
  );
}

/** Throws ARM's AuthorizationFailed unless the principal may perform `action` on `id`. */
export function authorize(principal: Principal, action: Action, id?: string): void {
  if (allows(principal, action, id)) return;
  const scope = id === undefined ? 'every session pool' : `scope '${id}'`;
  throw new AppError(
    ErrorCode.AuthorizationFailed,
    `The client '${principal.id}' does not have authorization to perform action '${action}' over ${scope}. ` +
      `Grant it a role that allows it (${(Object.keys(PERMISSIONS) as Role[]).filter((r) => PERMISSIONS[r].includes(action)).join(' or ')}).`,
  );
}

/** Whether every grant in `grants` is one the principal holds: the same role at its scope or wider. */
export function canDelegate(principal: Principal, grants: Grant[]): boolean {
  return grants.every((wanted) =>
    principal.grants.some((own) => own.role === wanted.role && scopeContains(own.scope, wanted.scope)),
  );
}
