/**
 * @module sandbox/oci/cgroups
 * Reads and cleans the cgroups a runtime made for a sandbox, on cgroup v1 (one hierarchy per
 * controller, as on this machine type's hybrid layout) and on a pure v2 host. Runtimes killed from
 * outside leave empty cgroup directories behind; {@link removeCgroups} is the reaper for them.
 * What a sandbox's start writes here (its cgroups, its CPU limit) is written synchronously: a
 * cgroup file is kernel memory that never waits on a disk, and a round trip through libuv's thread
 * pool for each of a sandbox's twenty files cost its start more than the writes themselves.
 */

import { mkdirSync, writeFileSync } from 'node:fs';
import { readFile, readdir, rmdir, lstat, access, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import type { ResourceUsage, SandboxesMemory } from '../driver.js';

export const CGROUP_ROOT = '/sys/fs/cgroup';

export interface CgroupLayout {
  version: 1 | 2;
  /** Directories that hold this layout's hierarchies (v1: one per mounted controller; v2: the root). */
  hierarchies: string[];
}

export async function detectCgroupLayout(root = CGROUP_ROOT): Promise<CgroupLayout> {
  const pureV2 = await access(join(root, 'cgroup.controllers')).then(
    () => true,
    () => false,
  );
  if (pureV2) return { version: 2, hierarchies: [root] };
  const hierarchies: string[] = [];
  for (const name of await readdir(root)) {
    const path = join(root, name);
    // Combined controllers (cpu,cpuacct) appear once as a directory and again as symlinks.
    if ((await lstat(path)).isDirectory()) hierarchies.push(path);
  }
  return { version: 1, hierarchies };
}

/** How many times the kernel's OOM killer ran in the cgroup; 0 when it cannot be read. */
export async function readOomKills(layout: CgroupLayout, cgroupPath: string): Promise<number> {
  const file =
    layout.version === 2
      ? join(CGROUP_ROOT, cgroupPath, 'memory.events')
      : join(CGROUP_ROOT, 'memory', cgroupPath, 'memory.oom_control');
  try {
    const match = /^oom_kill (\d+)$/m.exec(await readFile(file, 'utf8'));
    return match ? Number(match[1]) : 0;
  } catch {
    return 0;
  }
}

/**
 * Whether the cgroup's memory ever reached its own limit (v2: the `max` event; v1, whose failure
 * counters this kernel leaves at 0: the peak usage within a charge batch of the limit, on the memory
 * or the memory+swap counter); undefined when it cannot be read. An OOM kill in a cgroup that never
 * reached its own limit came from an ancestor's: the sandboxes' parent, the host.
 */
export async function reachedOwnLimit(
  layout: CgroupLayout,
  cgroupPath: string,
): Promise<boolean | undefined> {
  if (layout.version === 2) {
    const hits = await readNumber(join(CGROUP_ROOT, cgroupPath, 'memory.events'), /^max (\d+)$/m);
    return hits === undefined ? undefined : hits > 0;
  }
  const dir = join(CGROUP_ROOT, 'memory', cgroupPath);
  let readable = false;
  for (const counter of ['memory', 'memory.memsw']) {
    const peak = await readNumber(join(dir, `${counter}.max_usage_in_bytes`));
    const limit = await readNumber(join(dir, `${counter}.limit_in_bytes`));
    if (peak === undefined || limit === undefined) continue;
    readable = true;
    if (peak >= limit - CHARGE_SLACK_BYTES) return true;
  }
  return readable ? false : undefined;
}

/** How far below its limit a cgroup's peak may stay when a charge fails: the kernel charges in batches. */
const CHARGE_SLACK_BYTES = 2 * 1024 * 1024;

/** v1 reports "no limit" as the largest page-aligned counter value; anything this large is none. */
const UNLIMITED_V1 = 2 ** 62;

/** The memory directory of a cgroup path: v1 has a hierarchy of its own for the controller. */
export function memoryDir(layout: CgroupLayout, cgroupPath: string): string {
  return layout.version === 2 ? join(CGROUP_ROOT, cgroupPath) : join(CGROUP_ROOT, 'memory', cgroupPath);
}

/**
 * Caps what the cgroup's processes may hold together, creating the cgroup if needed. The kernel
 * refuses (EBUSY) a limit below what they hold and cannot reclaim.
 */
export async function writeMemoryLimit(
  layout: CgroupLayout,
  cgroupPath: string,
  bytes: number,
): Promise<void> {
  const dir = memoryDir(layout, cgroupPath);
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, layout.version === 2 ? 'memory.max' : 'memory.limit_in_bytes'), String(bytes));
}

/**
 * The cgroup's memory limit and working set: its usage less the file cache the kernel can drop
 * first (`inactive_file`), as Kubernetes counts it. Zero use when the cgroup does not exist yet.
 */
export async function readMemory(layout: CgroupLayout, cgroupPath: string): Promise<SandboxesMemory> {
  const v2 = layout.version === 2;
  const dir = memoryDir(layout, cgroupPath);
  // v2 says `max` for no limit, which reads as no number.
  const limit = await readNumber(join(dir, v2 ? 'memory.max' : 'memory.limit_in_bytes'));
  const usage = (await readMemoryUsage(layout, cgroupPath)) ?? 0;
  const inactive =
    (await readNumber(
      join(dir, 'memory.stat'),
      v2 ? /^inactive_file (\d+)$/m : /^total_inactive_file (\d+)$/m,
    )) ?? 0;
  return {
    limitBytes: limit === undefined || limit >= UNLIMITED_V1 ? null : limit,
    workingSetBytes: Math.max(0, usage - inactive),
  };
}

/** What the cgroup's processes hold, page cache included; undefined when it does not exist. */
export function readMemoryUsage(layout: CgroupLayout, cgroupPath: string): Promise<number | undefined> {
  const file = layout.version === 2 ? 'memory.current' : 'memory.usage_in_bytes';
  return readNumber(join(memoryDir(layout, cgroupPath), file));
}

async function readNumber(file: string, pattern?: RegExp): Promise<number | undefined> {
  try {
    const text = await readFile(file, 'utf8');
    const match = pattern ? pattern.exec(text) : /^(\d+)/.exec(text);
    return match ? Number(match[1]) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * CPU time and memory the cgroup has used so far; undefined when its files are gone (the sandbox
 * was already removed). Peak memory needs kernel 5.19+ on cgroup v2 (`memory.peak`).
 */
export async function readUsage(
  layout: CgroupLayout,
  cgroupPath: string,
): Promise<ResourceUsage | undefined> {
  if (layout.version === 2) {
    const dir = join(CGROUP_ROOT, cgroupPath);
    const cpuMicros = await readNumber(join(dir, 'cpu.stat'), /^usage_usec (\d+)$/m);
    if (cpuMicros === undefined) return undefined;
    const memory = (await readNumber(join(dir, 'memory.current'))) ?? 0;
    return {
      cpuSeconds: cpuMicros / 1e6,
      memoryBytes: memory,
      peakMemoryBytes: (await readNumber(join(dir, 'memory.peak'))) ?? memory,
    };
  }
  const cpuNanos = await readNumber(join(CGROUP_ROOT, 'cpuacct', cgroupPath, 'cpuacct.usage'));
  if (cpuNanos === undefined) return undefined;
  const memoryDir = join(CGROUP_ROOT, 'memory', cgroupPath);
  return {
    cpuSeconds: cpuNanos / 1e9,
    memoryBytes: (await readNumber(join(memoryDir, 'memory.usage_in_bytes'))) ?? 0,
    peakMemoryBytes: (await readNumber(join(memoryDir, 'memory.max_usage_in_bytes'))) ?? 0,
  };
}

/** Removes the sandbox's cgroup from every hierarchy; returns the paths that could not be removed. */
export async function removeCgroups(layout: CgroupLayout, cgroupPath: string): Promise<string[]> {
  const left: string[] = [];
  for (const hierarchy of layout.hierarchies) {
    const dir = join(hierarchy, cgroupPath);
    try {
      await rmdir(dir);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') left.push(dir);
    }
  }
  return left;
}

/** Every hierarchy's directory for this cgroup path that still exists. */
export async function existingCgroups(layout: CgroupLayout, cgroupPath: string): Promise<string[]> {
  const found: string[] = [];
  for (const hierarchy of layout.hierarchies) {
    const dir = join(hierarchy, cgroupPath);
    if (
      await access(dir).then(
        () => true,
        () => false,
      )
    )
      found.push(dir);
  }
  return found;
}

/**
 * Sets the CFS quota of a running cgroup (`cpu` cores per `periodUs`) and returns it to the default
 * weight it was started above (see oci-spec's BOOT_CPU_SHARES).
 */
export function writeCpuLimit(layout: CgroupLayout, cgroupPath: string, cpu: number, periodUs: number): void {
  const quota = Math.round(cpu * periodUs);
  if (layout.version === 2) {
    writeFileSync(join(CGROUP_ROOT, cgroupPath, 'cpu.max'), `${quota} ${periodUs}`);
    writeFileSync(join(CGROUP_ROOT, cgroupPath, 'cpu.weight'), '100');
  } else {
    writeFileSync(join(CGROUP_ROOT, 'cpu', cgroupPath, 'cpu.cfs_quota_us'), String(quota));
    writeFileSync(join(CGROUP_ROOT, 'cpu', cgroupPath, 'cpu.shares'), '1024');
  }
}

/** The devices a sandbox may open (the OCI runtimes' default set), as v1 `devices.allow` lines. */
const ALLOWED_DEVICES = [
  'c 1:3 rwm', // null
  'c 1:5 rwm', // zero
  'c 1:7 rwm', // full
  'c 1:8 rwm', // random
  'c 1:9 rwm', // urandom
  'c 5:0 rwm', // tty
  'c 5:2 rwm', // ptmx
  'c 136:* rwm', // pts
];

/** What a sandbox's cgroup limits: the runtimes write these from the OCI config's resources. */
export interface CgroupLimits {
  memoryBytes: number;
  pids: number;
  cpuQuotaUs: number;
  cpuPeriodUs: number;
  /** v1 cpu.shares; v2 takes the weight runc would map it to. */
  cpuShares: number;
}

/**
 * Makes a sandbox's cgroups and writes its limits as an OCI runtime would (memory with swap equal
 * to it, pids, the CPU quota and boot weight, and on v1 the device allow-list); returns the
 * `cgroup.procs` files a process writes itself into.
 */
export function createCgroups(layout: CgroupLayout, cgroupPath: string, limits: CgroupLimits): string[] {
  const write = (dir: string, file: string, value: string) => writeFileSync(join(dir, file), value);
  if (layout.version === 2) {
    const dir = join(CGROUP_ROOT, cgroupPath);
    mkdirSync(dir, { recursive: true });
    write(dir, 'memory.max', String(limits.memoryBytes));
    write(dir, 'memory.swap.max', '0');
    write(dir, 'pids.max', String(limits.pids));
    write(dir, 'cpu.max', `${limits.cpuQuotaUs} ${limits.cpuPeriodUs}`);
    // runc's mapping of shares 2..262144 onto weights 1..10000.
    write(dir, 'cpu.weight', String(Math.round(1 + ((limits.cpuShares - 2) * 9999) / 262_142)));
    return [join(dir, 'cgroup.procs')];
  }
  const dir = (controller: string) => join(CGROUP_ROOT, controller, cgroupPath);
  for (const controller of ['memory', 'pids', 'cpu', 'cpuacct', 'devices']) {
    mkdirSync(dir(controller), { recursive: true });
  }
  write(dir('memory'), 'memory.limit_in_bytes', String(limits.memoryBytes));
  try {
    write(dir('memory'), 'memory.memsw.limit_in_bytes', String(limits.memoryBytes));
  } catch {
    // no swap accounting on this kernel
  }
  write(dir('pids'), 'pids.max', String(limits.pids));
  write(dir('cpu'), 'cpu.cfs_period_us', String(limits.cpuPeriodUs));
  write(dir('cpu'), 'cpu.cfs_quota_us', String(limits.cpuQuotaUs));
  write(dir('cpu'), 'cpu.shares', String(limits.cpuShares));
  write(dir('devices'), 'devices.deny', 'a');
  for (const device of ALLOWED_DEVICES) write(dir('devices'), 'devices.allow', device);
  return ['memory', 'pids', 'cpu', 'cpuacct', 'devices'].map((controller) =>
    join(dir(controller), 'cgroup.procs'),
  );
}
