/**
 * Real sandboxes for integration tests: each test file gets its own state directory, runtime root,
 * cgroup parent and host id range, so files run in parallel and never touch a running server's
 * sandboxes. The PythonLTS and NodeLTS images must exist (scripts/setup.sh builds them).
 */

import { existsSync, readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { after } from 'node:test';
import { join } from 'node:path';

import { DEFAULT_RESOURCES, type SandboxResources } from '../../src/sandbox/driver.js';
import { OciDriver, type OciDriverOptions } from '../../src/sandbox/oci/oci-driver.js';
import { config, isolatedDriverOptions, removeIsolatedDriver } from '../isolated-driver.js';
import { InterpreterInstance } from '../../src/pool/interpreter-instance.js';

/** Why these tests cannot run here, or undefined when they can. */
export const skipReason: string | undefined =
  process.getuid?.() !== 0
    ? 'integration tests manage namespaces, cgroups and mounts: run them as root'
    : undefined;

for (const [type, rootfs] of Object.entries({
  PythonLTS: config.paths.pythonRootfs,
  NodeLTS: config.paths.nodeRootfs,
})) {
  if (!skipReason && !existsSync(join(rootfs, 'etc/sandpool/image.json'))) {
    throw new Error(`no ${type} image at ${rootfs}: run scripts/setup.sh first`);
  }
}

export const image = { rootfs: config.paths.pythonRootfs, agentDir: config.paths.pythonAgentDir };
export const nodeImage = {
  rootfs: config.paths.nodeRootfs,
  agentDir: config.paths.nodeAgentDir,
  agent: 'node' as const,
};
/**
 * The two ways an interpreter sandbox starts, which the escape battery, the faults and the restart
 * tests each run against: runc starts it, or a zygote forks it (SANDPOOL_ZYGOTE). `mark` keeps the
 * second's test servers apart by name, short so that the agent socket's path stays short.
 */
export const SANDBOX_STARTS: readonly { name: string; mark: string; env: Record<string, string> }[] = [
  { name: 'runc', mark: '', env: { SANDPOOL_ZYGOTE: 'false' } },
  { name: 'zygote', mark: 'z', env: { SANDPOOL_ZYGOTE: 'true' } },
];

export const agentOptions = { connectTimeoutMs: 15_000, interruptGraceMs: 1_500 };
const SANDBOXES_PER_FILE = 16;

export function driverOptions(name: string): OciDriverOptions {
  const options = isolatedDriverOptions(name, SANDBOXES_PER_FILE);
  // Whatever a failing test left running is destroyed too, so one failure does not leak into the host.
  after(() => removeIsolatedDriver(options));
  return options;
}

export function testDriver(name: string): OciDriver {
  return new OciDriver(driverOptions(name));
}

let counter = 0;
export function uniqueId(label: string): string {
  return `${label}-${process.pid}-${counter++}`;
}

export function startPython(
  driver: OciDriver,
  label: string,
  resources: Partial<SandboxResources> = {},
): Promise<InterpreterInstance> {
  return InterpreterInstance.start(driver, {
    id: uniqueId(label),
    runtime: 'runc',
    image,
    resources: { ...DEFAULT_RESOURCES, ...resources },
    agent: agentOptions,
  });
}

/** Runs code and returns its last expression's value, failing the test on any error. */
export async function value(
  session: InterpreterInstance,
  code: string,
  timeoutMs = 30_000,
): Promise<unknown> {
  const outcome = await session.execute({ code, timeoutMs, maxOutputChars: 65_536 });
  if (outcome.error)
    throw new Error(`${outcome.error.name}: ${outcome.error.message}\n${outcome.error.traceback}`);
  return outcome.result;
}

/** Host pids whose network namespace is the given one. */
export function processesInNetns(netns: string): number[] {
  return readdirSync('/proc')
    .filter((entry) => /^\d+$/.test(entry))
    .filter((pid) => {
      try {
        return readlinkSync(`/proc/${pid}/ns/net`) === netns;
      } catch {
        return false;
      }
    })
    .map(Number);
}

export function mountsBelow(dir: string): string[] {
  return readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .map((line) => line.split(' ')[1] ?? '')
    .filter((target) => target.startsWith(dir));
}

/** The host pids of an init's direct children. */
export function childrenOf(pid: number): number[] {
  return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
    .trim()
    .split(/\s+/)
    .filter(Boolean)
    .map(Number);
}
