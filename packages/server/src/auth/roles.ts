/**
 * @module auth/roles
 * Who may do what. A grant is a role on one pool or on all of them, written `Role` or `Role:pool`
 * (the form API keys and token `roles` claims carry). The roles mirror Azure's: Session Executor for
 * the data plane, Contributor for managing pools, Reader for looking.
 */

import { AppError, ErrorCode } from '../errors.js';

export type Role = 'SessionExecutor' | 'Contributor' | 'Reader';

export type Action =
  /** Read pools, their operations and events. */
  | 'pools/read'
  /** Create, update and delete pools. */
  | 'pools/write'
  /** Run code and move files in sessions. */
  | 'sessions/execute'
  /** End a session before its time (its owner, or an operator looking after the pool). */
  | 'sessions/stop'
  /** See sessions, executions and pool metadata. */
  | 'sessions/read'
  /** Issue and revoke API keys and tokens (needs the role on every pool). */
  | 'keys/write';

export interface Grant {
  role: Role;
  /** A pool name, or '*' for every pool. */
  scope: string;
}

export interface Principal {
  /** `key:<id>` for API keys, `<iss>#<sub>` for tokens. */
  id: string;
  grants: Grant[];
}

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

const POOL_SCOPE = /^(\*|[a-z][a-z0-9]{2,62})$/;

export function parseGrant(text: string): Grant {
  const [rolePart = '', scope = '*', extra] = text.split(':');
  const role = ALIASES[rolePart.replace(/\s+/g, '').toLowerCase()];
  if (!role || extra !== undefined || !POOL_SCOPE.test(scope)) {
    throw new AppError(
      ErrorCode.InvalidParameter,
      `invalid role grant ${JSON.stringify(text)}: use SessionExecutor, Contributor or Reader, optionally followed by :<pool name>`,
      { target: 'roles' },
    );
  }
  return { role, scope };
}

export const formatGrant = (grant: Grant) =>
  grant.scope === '*' ? grant.role : `${grant.role}:${grant.scope}`;

/** Whether the principal may perform `action` on `pool` (on every pool when `pool` is omitted). */
function allows(principal: Principal, action: Action, pool?: string): boolean {
  return principal.grants.some(
    (grant) =>
      PERMISSIONS[grant.role].includes(action) &&
      (grant.scope === '*' || (pool !== undefined && grant.scope === pool.toLowerCase())),
  );
}

/** Throws ARM's AuthorizationFailed unless the principal may perform `action`. */
export function authorize(principal: Principal, action: Action, pool?: string): void {
  if (allows(principal, action, pool)) return;
  const scope = pool === undefined ? 'every session pool' : `session pool '${pool}'`;
  throw new AppError(
    ErrorCode.AuthorizationFailed,
    `The client '${principal.id}' does not have authorization to perform action '${action}' over ${scope}. ` +
      `Grant it a role that allows it (${(Object.keys(PERMISSIONS) as Role[]).filter((r) => PERMISSIONS[r].includes(action)).join(' or ')}).`,
  );
}

/** The grants a principal may hand on: a subset of its own. */
export function canDelegate(principal: Principal, grants: Grant[]): boolean {
  return grants.every((wanted) =>
    principal.grants.some(
      (own) => own.role === wanted.role && (own.scope === '*' || own.scope === wanted.scope),
    ),
  );
}
