/**
 * @module pool/retire
 * Retiring an instance, ready or claimed: its end is stored first (a new session for the same
 * identifier may be stored before the destroy finishes), a session's use is measured while its
 * cgroup can still be read, then the instance is destroyed and the end recorded.
 */

import type { Logger } from 'pino';

import type { JsonObject } from '../store/store.js';
import type { HeldInstance } from './instance.js';
import type { EndReason } from './pool-spec.js';
import type { PoolRecorder } from './pool-recorder.js';
import { measureSession } from './usage-ledger.js';

export interface RetireDeps {
  recorder: PoolRecorder;
  log: Logger;
  now: () => number;
}

/** A claimed instance's session: when it was taken and last used, and what it ran. */
export interface SessionTimesAndCount {
  allocatedAt: number;
  lastAccessedAt: number;
  executions: number;
}

export async function retire(
  held: HeldInstance,
  reason: EndReason,
  details: JsonObject | null,
  deps: RetireDeps,
  session?: SessionTimesAndCount,
): Promise<void> {
  const endedAt = new Date(deps.now()).toISOString();
  held.row = { ...held.row, state: 'ended', endedAt, endReason: reason, endDetails: details };
  await deps.recorder.storeRow(held.row);
  const usage = session && (await measureSession(held.instance, session, deps.now()));
  if (usage) {
    held.row = { ...held.row, endDetails: { ...details, usage: { ...usage } } };
    await deps.recorder.storeRow(held.row);
  }
  await held.instance
    .destroy()
    .catch((error: unknown) =>
      deps.log.error({ err: error, sandbox: held.row.id }, 'sandbox.destroy failed'),
    );
  await deps.recorder.ended(held.row, {
    ...(usage && { usage }),
    ...(session && { executions: session.executions }),
  });
}
