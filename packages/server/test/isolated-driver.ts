/**
 * OCI driver options with their own state directory, runtime root, cgroup parent and host id range,
 * so test files and benchmarks run beside each other (and beside a live server) without touching
 * one another's sandboxes.
 */

import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';

import { loadConfig } from '../src/config.js';
import { OciDriver, defaultRuntimes, type OciDriverOptions } from '../src/sandbox/oci/oci-driver.js';

export const config = loadConfig();

export function isolatedDriverOptions(name: string, maxSandboxes: number): OciDriverOptions {
  const stateDir = mkdtempSync(`/var/tmp/sandpool-test-${name}-`);
  chmodSync(stateDir, 0o711);
  const runtimeStateDir = join('/run', `sandpool-test-${name}-${process.pid}`);
  return {
    stateDir,
    runtimeStateDir,
    cgroupParent: 'sandpool-test',
    seccompProfilePath: config.seccompProfile,
    conmonPath: config.conmonPath,
    idBase: 1_500_000_000 + (process.pid % 1000) * 65_536 * maxSandboxes,
    maxSandboxes,
    runtimes: defaultRuntimes(runtimeStateDir),
  };
}

/** Destroys every sandbox left under these options and removes their directories. */
export async function removeIsolatedDriver(options: OciDriverOptions): Promise<void> {
  const driver = new OciDriver(options);
  for (const sandbox of await driver.list()) await driver.destroy(sandbox.id);
  rmSync(options.stateDir, { recursive: true });
  rmSync(options.runtimeStateDir, { recursive: true, force: true });
}
