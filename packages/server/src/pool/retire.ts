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
  /**
   * The pool's instances being retired, by id: each holds its sandbox, cores and memory on this
   * node until its destroy has finished, after its row says it ended.
   */
  retiring: Set<string>;
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
  const { id } = held.row;
  held.row = { ...held.row, state: 'ended', endedAt, endReason: reason, endDetails: details };
  deps.retiring.add(id);
  let usage: Awaited<ReturnType<typeof measureSession>> | undefined;
  try {
    await deps.recorder.storeRow(held.row);
    usage = session && (await measureSession(held.instance, session, deps.now()));
    if (usage) {
      held.row = { ...held.row, endDetails: { ...details, usage: { ...usage } } };
      await deps.recorder.storeRow(held.row);
    }
    await held.instance
      .destroy()
      .catch((error: unknown) => deps.log.error({ err: error, sandbox: id }, 'sandbox.destroy failed'));
  } finally {
    deps.retiring.delete(id);
  }
  await deps.recorder.ended(held.row, {
    ...(usage && { usage }),
    ...(session && { executions: session.executions }),
  });
}
