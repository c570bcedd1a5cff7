/**
 * @module api/e2b/sandbox-reach
 * The session a sandbox's own request (envd, the code interpreter, its ports) is for: named by its
 * `E2b-Sandbox-Id`, reached through the request path (served here, or forwarded to the node that
 * holds it), and followed until it is answered, so that its connection is reset if the sandbox ends.
 * A sandbox that does not run is E2B's 502, which its SDKs read as "not running".
 */

import type { FastifyReply, FastifyRequest } from 'fastify';

import { AppError, ErrorCode } from '../../errors.js';
import type { E2bSandboxes } from '../../pool/e2b-sandboxes.js';
import type { PoolManager, Session } from '../../pool/pool-manager.js';
import type { SessionSteps } from '../request-path.js';
import type { SandboxConnections } from './sandbox-connections.js';
import { sandboxIdOf } from './sandbox-routing.js';

export interface SandboxReachDeps {
  sandboxes: E2bSandboxes;
  sessions: SessionSteps;
  connections: SandboxConnections;
}

export const sandboxNotRunning = (sandboxId: string) =>
  new AppError(ErrorCode.SandboxNotRunning, 'The sandbox was not found', { details: { sandboxId } });

/**
 * The user a request asks to act as (envd's `Authorization: Basic <user>:`, `/files`'s `username`).
 * A sandbox's programs run as its one user; root is refused rather than quietly given that user.
 */
function checkUser(request: FastifyRequest): void {
  const header = request.headers.authorization;
  const basic = header?.startsWith('Basic ')
    ? Buffer.from(header.slice(6), 'base64').toString().split(':')[0]
    : undefined;
  const named = (request.query as { username?: unknown } | undefined)?.username;
  if (basic === 'root' || named === 'root') {
    throw new AppError(
      ErrorCode.NotSupported,
      'running as root is not supported by Sandpool’s sandboxes yet: their programs run as the user "user"',
      { target: 'user' },
    );
  }
}

/** The sandbox's session and pool, here; undefined once the request went to the node that holds it. */
export async function reachSandbox(
  deps: SandboxReachDeps,
  request: FastifyRequest,
  reply: FastifyReply,
): Promise<{ manager: PoolManager; session: Session } | undefined> {
  checkUser(request);
  const sandboxId = sandboxIdOf(request.headers) ?? '';
  const manager = await deps.sandboxes.locate(sandboxId);
  if (!manager) throw sandboxNotRunning(sandboxId);
  const found = await deps.sessions.find(request, reply, { manager, identifier: sandboxId });
  if (!found) return undefined;
  const session = found.claimed?.session;
  if (!session) throw sandboxNotRunning(sandboxId);
  deps.connections.track(manager.id, sandboxId, reply.raw);
  return { manager, session };
}
