/**
 * @module sandbox/oci/oci-spec
 * Builds the hardened OCI runtime `config.json` for one sandbox. Pure: every host fact it needs
 * (paths, uid base, seccomp profile) comes in as an argument, so the whole policy is table-testable.
 *
 * The policy: own pid/mount/net/ipc/uts/cgroup/user namespaces; a read-only image rootfs; writable
 * `/mnt/data` (a size-capped host tmpfs, bound in), `/tmp` and `$HOME` (size-capped tmpfs); no
 * capabilities; no_new_privs; the default seccomp profile; cgroup limits on memory, CPU and pids; no
 * device access beyond the runtime's defaults; /proc's sensitive files masked; no /sys at all.
 */

import type { OciSeccomp } from './seccomp.js';
import type { SandboxSpec } from '../driver.js';
import { SANDBOX_OOM_SCORE_ADJ } from '../oom-score.js';

/** Inside the sandbox, code runs as this unprivileged user; container root exists only for setup. */
export const SANDBOX_UID = 1000;
export const SANDBOX_GID = 1000;
/** Each sandbox gets its own range of this many host ids, mapped to container ids 0..size-1. */
export const ID_RANGE_SIZE = 65536;
export const CPU_PERIOD_US = 100_000;

export const PATHS = {
  data: '/mnt/data',
  agentSocketDir: '/run/sandpool',
  home: '/home/user',
  tmp: '/tmp',
} as const;

export interface OciMount {
  destination: string;
  type?: string;
  source?: string;
  options?: string[];
}

export interface OciConfig {
  ociVersion: string;
  process: {
    terminal: boolean;
    user: { uid: number; gid: number; additionalGids: number[] };
    args: string[];
    env: string[];
    cwd: string;
    capabilities: Record<'bounding' | 'effective' | 'inheritable' | 'permitted' | 'ambient', string[]>;
    rlimits: { type: string; hard: number; soft: number }[];
    noNewPrivileges: boolean;
    oomScoreAdj: number;
  };
  root: { path: string; readonly: boolean };
  hostname: string;
  mounts: OciMount[];
  linux: {
    uidMappings: { containerID: number; hostID: number; size: number }[];
    gidMappings: { containerID: number; hostID: number; size: number }[];
    namespaces: { type: string; path?: string }[];
    sysctl: Record<string, string>;
    cgroupsPath: string;
    resources: {
      devices: { allow: boolean; access: string }[];
      memory: { limit: number; swap: number };
      cpu: { quota: number; period: number; shares: number };
      pids: { limit: number };
    };
    maskedPaths: string[];
    readonlyPaths: string[];
    seccomp: OciSeccomp;
  };
}

export interface OciHostLayout {
  /** Host directory bound at `/mnt/data` (a size-capped tmpfs the driver mounted). */
  dataDir: string;
  /** Host directory bound at `/run/sandpool`, where the agent creates its socket. */
  agentSocketDir: string;
  /** First host uid/gid of this sandbox's id range. */
  idBase: number;
  /** cgroup path below each controller's root, e.g. `/sandpool/<id>`. */
  cgroupsPath: string;
  /** With egress: the host file bound read-only at /etc/resolv.conf (it names the sandbox's gateway). */
  resolvConf?: string;
}

const NOFILE_LIMIT = 4096;
/** cgroup v1's largest cpu.shares (runc maps it to cpu.weight 10000 on v2); running sandboxes get 1024 (weight 100). */
export const BOOT_CPU_SHARES = 262_144;

/** /proc entries that leak host information or allow host-affecting writes (the runtimes' defaults). */
const MASKED_PATHS = [
  '/proc/acpi',
  '/proc/asound',
  '/proc/kcore',
  '/proc/keys',
  '/proc/latency_stats',
  '/proc/timer_list',
  '/proc/timer_stats',
  '/proc/sched_debug',
  '/proc/scsi',
  '/proc/interrupts',
  '/proc/sys/kernel/random/boot_id',
];
const READONLY_PATHS = ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'];

function tmpfs(destination: string, bytes: number, mode: string): OciMount {
  return {
    destination,
    type: 'tmpfs',
    source: 'tmpfs',
    options: ['nosuid', 'nodev', `mode=${mode}`, `size=${bytes}`, `uid=${SANDBOX_UID}`, `gid=${SANDBOX_GID}`],
  };
}

export function buildOciConfig(spec: SandboxSpec, host: OciHostLayout, seccomp: OciSeccomp): OciConfig {
  const { resources } = spec;
  const env = Object.entries({
    PATH: '/usr/local/bin:/usr/bin:/bin',
    HOME: PATHS.home,
    LANG: 'C.UTF-8',
    ...spec.env,
  }).map(([k, v]) => `${k}=${v}`);
  const binds: OciMount[] = spec.readOnlyBinds.map((b) => ({
    destination: b.destination,
    type: 'bind',
    source: b.source,
    options: ['rbind', 'ro', 'nosuid', 'nodev'],
  }));
  return {
    ociVersion: '1.0.2',
    process: {
      terminal: false,
      user: { uid: SANDBOX_UID, gid: SANDBOX_GID, additionalGids: [] },
      args: spec.command,
      env,
      cwd: spec.cwd ?? PATHS.data,
      capabilities: { bounding: [], effective: [], inheritable: [], permitted: [], ambient: [] },
      rlimits: [
        { type: 'RLIMIT_NOFILE', hard: NOFILE_LIMIT, soft: NOFILE_LIMIT },
        { type: 'RLIMIT_CORE', hard: 0, soft: 0 },
      ],
      noNewPrivileges: true,
      // Under host memory pressure the kernel picks sandboxes before the server.
      oomScoreAdj: SANDBOX_OOM_SCORE_ADJ,
    },
    root: { path: spec.rootfs, readonly: true },
    hostname: 'sandbox',
    mounts: [
      { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
      {
        destination: '/dev',
        type: 'tmpfs',
        source: 'tmpfs',
        options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'],
      },
      {
        destination: '/dev/pts',
        type: 'devpts',
        source: 'devpts',
        options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620'],
      },
      tmpfs('/dev/shm', Math.min(resources.tmpBytes, 64 * 1024 * 1024), '1777'),
      {
        destination: '/dev/mqueue',
        type: 'mqueue',
        source: 'mqueue',
        options: ['nosuid', 'noexec', 'nodev'],
      },
      tmpfs(PATHS.tmp, resources.tmpBytes, '1777'),
      tmpfs(PATHS.home, 16 * 1024 * 1024, '0700'),
      {
        destination: PATHS.data,
        type: 'bind',
        source: host.dataDir,
        options: ['rbind', 'rw', 'nosuid', 'nodev'],
      },
      {
        destination: PATHS.agentSocketDir,
        type: 'bind',
        source: host.agentSocketDir,
        options: ['rbind', 'rw', 'nosuid', 'nodev', 'noexec'],
      },
      ...binds,
      ...(host.resolvConf
        ? [
            {
              destination: '/etc/resolv.conf',
              type: 'bind',
              source: host.resolvConf,
              options: ['bind', 'ro', 'nosuid', 'nodev', 'noexec'],
            },
          ]
        : []),
    ],
    linux: {
      uidMappings: [{ containerID: 0, hostID: host.idBase, size: ID_RANGE_SIZE }],
      gidMappings: [{ containerID: 0, hostID: host.idBase, size: ID_RANGE_SIZE }],
      namespaces: [
        { type: 'pid' },
        // A new network namespace: loopback only, unless the driver adds an egress link before start.
        { type: 'network' },
        { type: 'ipc' },
        { type: 'uts' },
        { type: 'mount' },
        { type: 'user' },
        { type: 'cgroup' },
      ],
      // Its own network namespace, so this reaches no one else: a server image may listen on port 80
      // without CAP_NET_BIND_SERVICE, which the sandbox never has.
      sysctl: { 'net.ipv4.ip_unprivileged_port_start': '0' },
      cgroupsPath: host.cgroupsPath,
      resources: {
        devices: [{ allow: false, access: 'rwm' }],
        memory: { limit: resources.memoryBytes, swap: resources.memoryBytes },
        // A starting sandbox outweighs running ones, so busy neighbours on a loaded host cannot starve
        // a cold start past its timeout; the driver's setCpuLimit returns it to the default weight.
        cpu: {
          quota: Math.round(resources.cpu * CPU_PERIOD_US),
          period: CPU_PERIOD_US,
          shares: BOOT_CPU_SHARES,
        },
        pids: { limit: resources.pids },
      },
      maskedPaths: MASKED_PATHS,
      readonlyPaths: READONLY_PATHS,
      seccomp,
    },
  };
}
