/**
 * @module sandbox/oci/id-slots
 * Host id ranges: sandbox slot n maps its user namespace onto host ids
 * [idBase + n·65536, idBase + (n+1)·65536), so no two live sandboxes share a host uid. A slot is
 * taken at create, given back at destroy, and read back from the sandboxes on disk after a restart.
 */

import { ConfigError } from '../../config.js';
import { AppError, ErrorCode } from '../../errors.js';
import { ID_RANGE_SIZE, SANDBOX_GID, SANDBOX_UID } from './oci-spec.js';

/** The largest valid host uid/gid: (uid_t)-1 means "no change" to the kernel. */
export const MAX_HOST_ID = 2 ** 32 - 2;

export class IdSlots {
  private readonly used = new Set<number>();

  constructor(
    /** First host uid of the id ranges. */
    readonly idBase: number,
    /** Upper bound on live sandboxes, which bounds the host id ranges in use. */
    private readonly maxSandboxes: number,
  ) {
    const lastId = idBase + maxSandboxes * ID_RANGE_SIZE - 1;
    if (idBase < ID_RANGE_SIZE || lastId > MAX_HOST_ID) {
      throw new ConfigError(
        `host id ranges ${idBase}..${lastId} for ${maxSandboxes} sandboxes must lie within ${ID_RANGE_SIZE}..${MAX_HOST_ID}`,
      );
    }
  }

  /** Marks a slot found on disk as taken. */
  mark(slot: number): void {
    this.used.add(slot);
  }

  take(): number {
    for (let slot = 0; slot < this.maxSandboxes; slot++) {
      if (!this.used.has(slot)) {
        this.used.add(slot);
        return slot;
      }
    }
    throw new AppError(ErrorCode.SandboxStartFailed, `host limit of ${this.maxSandboxes} sandboxes reached`);
  }

  giveBack(slot: number): void {
    this.used.delete(slot);
  }

  /** The first host id of the slot's range: the sandbox's root maps onto it. */
  rangeStart(slot: number): number {
    return this.idBase + slot * ID_RANGE_SIZE;
  }

  /** The host uid and gid the sandbox's unprivileged user maps to. */
  sandboxUser(slot: number): { uid: number; gid: number } {
    const start = this.rangeStart(slot);
    return { uid: start + SANDBOX_UID, gid: start + SANDBOX_GID };
  }
}
