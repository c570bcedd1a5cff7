/**
 * @module pool/session-files
 * A session's files under `/mnt/data`, as the API works on them: on the instance's data directory of
 * a session the request reached (its cooldown reset meanwhile), with every path confined to it by
 * `sandbox/data-dir`.
 */

import { DataDirectory } from '../sandbox/data-dir.js';
import type { PoolManager } from './pool-manager.js';
import type { Session } from './sessions.js';

export { dataPathSegments, type DataDirectory, type DataFile } from '../sandbox/data-dir.js';

/** Runs `work` on the session's `/mnt/data`, keeping the session alive meanwhile. */
export function onSessionFiles<T>(
  manager: PoolManager,
  session: Session,
  work: (files: DataDirectory) => Promise<T>,
): Promise<T> {
  const { instance } = session;
  return manager.use(session, () => work(new DataDirectory(instance.dataDir, instance.dataOwner)), {
    serialize: false,
  });
}
