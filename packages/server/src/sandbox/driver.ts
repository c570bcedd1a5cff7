/**
 * @module sandbox/driver
 * The contract between the pool layer and whatever isolates code. A driver creates sandboxes that run
 * detached from the server process, reports how each one ended, and lists what is on the host so a
 * restarted server can reattach or clean up. Nothing above this module knows which runtime is used.
 */

/** The OCI runtime a pool runs on, chosen per pool like a Kubernetes RuntimeClass. */
export type RuntimeName = 'runc' | 'crun' | 'runsc';

export interface SandboxResources {
  /** CPU cores (0.25 = a quarter of one core), enforced as a CFS quota. */
  cpu: number;
  /** Memory limit in bytes, swap included; exceeding it OOM-kills inside the sandbox. */
  memoryBytes: number;
  /** Maximum number of processes and threads. */
  pids: number;
  /** Size cap of `/mnt/data`. */
  dataBytes: number;
  /** Size cap of `/tmp`. */
  tmpBytes: number;
}

export interface SandboxSpec {
  /** Unique among live sandboxes: lower-case letters, digits and dashes, at most 63 characters. */
  id: string;
  runtime: RuntimeName;
  /** Host path of a read-only root filesystem. */
  rootfs: string;
  /** The container's main process (after the image's init). */
  command: string[];
  env: Record<string, string>;
  resources: SandboxResources;
  /** Host directories made visible read-only inside, e.g. the interpreter agent's code. */
  readOnlyBinds: { source: string; destination: string }[];
  /** Working directory of the main process; `/mnt/data` when absent. */
  cwd?: string;
  /** What the layer above needs to take the sandbox up again after a restart; list() returns them. */
  labels?: Record<string, string>;
  /**
   * Outbound network (EgressEnabled): public addresses, or only `allow` (CIDRs, domain names, each
   * optionally with a port) when it lists any; DNS through `dnsServer`, the server's when absent.
   * Absent: the sandbox has loopback only.
   */
  egress?: { allow: string[]; dnsServer?: string };
  /**
   * Instead of running `command`, forks the image's prepared interpreter: a zygote that imported the
   * agent (its code at `agentCodeDir` inside, serving at `agentSocket`) and `preload`, so the sandbox
   * shares those pages. The isolation is the same; runc sandboxes without egress only. `warmUp` has
   * the agent rehearse a first request before it serves, if its spare did not rehearse it while it
   * waited: that pays the first execution's copy-on-write faults ahead, which is worth it for a
   * sandbox that waits for its session, not for one a request waits on.
   */
  fork?: { preload: string[]; agentCodeDir: string; agentSocket: string; warmUp: boolean };
}

/** A connection a sandbox tried and the egress rules refused. */
export interface DeniedConnection {
  destination: string;
  protocol: string;
  port: number | null;
  sourcePort: number | null;
}

/** Defaults match Azure's smallest session size. */
export const DEFAULT_RESOURCES: SandboxResources = {
  cpu: 0.25,
  memoryBytes: 512 * 1024 * 1024,
  pids: 256,
  dataBytes: 1024 * 1024 * 1024,
  tmpBytes: 256 * 1024 * 1024,
};

/** Why a sandbox stopped existing, as far as the sandbox layer can tell. */
export type ExitCause =
  /** The kernel's OOM killer ran inside the sandbox's memory cgroup. */
  | 'oom'
  /**
   * The kernel's OOM killer ended it though it was inside its own limit: the sandboxes together
   * reached the limit of their parent cgroup (the host's memory less its reserve).
   */
  | 'hostOom'
  /** The main process died of a signal it caused (SIGSEGV, SIGABRT…) or exited non-zero. */
  | 'crashed'
  /** Something outside Sandpool killed it (kill -9 from the host, a runtime `kill`). */
  | 'killed'
  /** The main process exited with status 0. */
  | 'exited'
  /** Sandpool destroyed it. */
  | 'destroyed';

export type SandboxState =
  | { status: 'running'; pid: number }
  | { status: 'exited'; cause: ExitCause; exitCode: number | null; signal: string | null }
  /** The driver knows the id but cannot tell what happened (state lost with the host). */
  | { status: 'unknown' };

export interface Sandbox {
  id: string;
  runtime: RuntimeName;
  /** Host path of the unix socket the in-sandbox agent listens on. */
  agentSocketPath: string;
  /** Host path of the directory the sandbox sees as `/mnt/data`. */
  dataDir: string;
  /** Host uid and gid of the sandbox's user: files the host puts in `dataDir` belong to them. */
  dataOwner: { uid: number; gid: number };
  /** Host path of the main process's stdout and stderr, one line per entry (the CRI log format). */
  consoleLogPath: string;
  labels: Record<string, string>;
  createdAt: Date;
}

export interface ResourceUsage {
  /** CPU time of every process in the sandbox, user and system. */
  cpuSeconds: number;
  memoryBytes: number;
  /** The most memory the sandbox held at once. */
  peakMemoryBytes: number;
}

/** The memory of every sandbox on the host together: what their parent cgroup holds and allows. */
export interface SandboxesMemory {
  /** The hard limit on all of them together; null when none is set. */
  limitBytes: number | null;
  /** What they hold and cannot give back at once: usage less the file cache the kernel drops first. */
  workingSetBytes: number;
}

export interface SandboxDriver {
  /** What every sandbox on the host holds together, and their common limit. */
  memory(): Promise<SandboxesMemory>;
  /**
   * Memory of the prepared interpreter (zygote) of `rootfs` with `preload`, which forked sandboxes
   * share; undefined while none runs.
   */
  preparedMemory(rootfs: string, preload: string[]): Promise<number | undefined>;
  /** Starts a sandbox and returns once its main process runs. */
  create(spec: SandboxSpec): Promise<Sandbox>;
  /** Current state; for an ended sandbox, how it ended. */
  inspect(id: string): Promise<SandboxState>;
  /** Changes the sandbox's CPU limit (cores) while it runs, and ends the priority it booted with. */
  setCpuLimit(id: string, cpu: number): Promise<void>;
  /** CPU and memory the sandbox has used; undefined once its cgroup is gone. */
  usage(id: string): Promise<ResourceUsage | undefined>;
  /** Sends a signal to the sandbox's main process (e.g. SIGINT to interrupt the interpreter). */
  signal(id: string, signal: 'SIGINT' | 'SIGKILL'): Promise<void>;
  /**
   * A host unix socket that reaches TCP `port` on the sandbox's loopback, and nothing else: the
   * sandbox gains no route out. Idempotent; after a server restart it opens the bridge again.
   */
  openPort(id: string, port: number): Promise<string>;
  /** Whether something in the sandbox listens on TCP `port`, asked without connecting. */
  isListening(id: string, port: number): Promise<boolean>;
  /** Kills every process and removes every trace: cgroups, mounts, namespaces, directories. */
  destroy(id: string): Promise<void>;
  /** Hears every connection a sandbox with egress tried and was refused. */
  onEgressDenied(listener: (sandboxId: string, attempt: DeniedConnection) => void): void;
  /** Every sandbox this driver has on the host, live or not, for reconciliation after a restart. */
  list(): Promise<Sandbox[]>;
}
