/**
 * OCI driver options with their own state directory, runtime root, cgroup parent and host id range,
 * so test files and benchmarks run beside each other (and beside a live server) without touching
 * one another's sandboxes.
 */

import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';

import { loadConfig } from '../src/config.js';
import { MAX_HOST_ID } from '../src/sandbox/oci/id-slots.js';
import { OciDriver, defaultRuntimes, type OciDriverOptions } from '../src/sandbox/oci/oci-driver.js';
import { ID_RANGE_SIZE } from '../src/sandbox/oci/oci-spec.js';

export const config = loadConfig({ argv: [] });

/** Tests take host ids from 1.5e9 up, apart from a server's default range, one block per process. */
const TEST_ID_BASE = 1_500_000_000;
const TEST_ID_SLOTS = Math.floor((MAX_HOST_ID - TEST_ID_BASE) / ID_RANGE_SIZE);

const BLOCKS_PER_PROCESS = 4;

/**
 * A host id range no other test process uses: each process owns a few blocks (one per driver or
 * server it starts), chosen by its pid.
 */
export function testIdBase(maxSandboxes: number, block = 0): number {
  const blocks = Math.floor(TEST_ID_SLOTS / (maxSandboxes * BLOCKS_PER_PROCESS));
  const index = (process.pid % blocks) * BLOCKS_PER_PROCESS + (block % BLOCKS_PER_PROCESS);
  return TEST_ID_BASE + index * maxSandboxes * ID_RANGE_SIZE;
}

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
    socatPath: config.socatPath,
    egress: { subnet: config.egressSubnet, dnsServer: config.egressDnsServer },
    idBase: testIdBase(maxSandboxes),
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
