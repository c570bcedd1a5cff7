/**
 * @module pool/session-files
 * A session's files under `/mnt/data`, as the API works on them: reached through the identifier's
 * session (allocated on first use, its cooldown reset), on the instance's data directory, with every
 * path confined to it by `sandbox/data-dir`.
 */

import { DataDirectory } from '../sandbox/data-dir.js';
import type { PoolManager } from './pool-manager.js';

export { dataPathSegments, type DataDirectory, type DataFile } from '../sandbox/data-dir.js';

/** Runs `work` on the identifier's `/mnt/data`; returns its value with the session it reached. */
export function withSessionFiles<T>(
  manager: PoolManager,
  identifier: string,
  work: (files: DataDirectory) => Promise<T>,
) {
  return manager.withSession(
    identifier,
    ({ instance }) => work(new DataDirectory(instance.dataDir, instance.dataOwner)),
    { serialize: false },
  );
}
