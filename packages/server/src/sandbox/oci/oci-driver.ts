/**
 * @module sandbox/oci/oci-driver
 * The OCI sandbox driver: a hardened bundle per sandbox, started by an OCI runtime (runc by default)
 * under conmon. conmon is the per-sandbox monitor: it stays the parent of the sandbox's init, survives
 * server restarts, and records the exit status, which is how an OOM kill, a crash and an external kill
 * are told apart after the fact.
 *
 * Host layout of one sandbox, `<stateDir>/<id>/`:
 *   sandbox.json   what list() reports after a restart
 *   bundle/        config.json (rootfs is the image, read-only)
 *   data/          a size-capped tmpfs, the sandbox's /mnt/data
 *   agent/         the sandbox's /run/sandpool, where the agent's socket lives
 *   exit/<id>      the exit status, written by conmon
 *   ports/         unix sockets bridged to TCP ports on the sandbox's loopback (see openPort)
 *   resolv.conf, egress.json   with egress: its resolver, the rule elements to remove, its DNS policy
 *   init.pid, conmon.pid, conmon.log, console.log
 */

import { existsSync, readFileSync } from 'node:fs';
import { chmod, chown, mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { release } from 'node:os';
import { join } from 'node:path';
import { realpath } from 'node:fs/promises';

import type { Config } from '../../config.js';
import { AppError, ErrorCode } from '../../errors.js';
import { runChecked, runCommand, type CommandRunner } from '../command.js';
import {
  DeniedWatcher,
  EgressNetwork,
  addressing,
  type EgressLink,
  type SandboxAddressing,
} from '../network/egress.js';
import type {
  DeniedConnection,
  ResourceUsage,
  RuntimeName,
  Sandbox,
  SandboxDriver,
  SandboxesMemory,
  SandboxSpec,
  SandboxState,
} from '../driver.js';
import {
  detectCgroupLayout,
  existingCgroups,
  reachedOwnLimit,
  readMemory,
  readOomKills,
  readUsage,
  removeCgroups,
  createCgroups,
  writeCpuLimit,
  writeMemoryLimit,
  type CgroupLayout,
} from './cgroups.js';
import { IdSlots } from './id-slots.js';
import {
  awaitExitCode,
  classifyExit,
  isAlive,
  launchMonitor,
  readPidFile,
  signalName,
  sleep,
  WAIT_STEP_MS,
  type RuntimeCommand,
} from './monitor.js';
import { CPU_PERIOD_US, ID_RANGE_SIZE, buildOciConfig, type OciConfig } from './oci-spec.js';
import { Zygotes, type ForkRequest } from '../zygote/zygotes.js';
import { closeBridges, isListening, openBridge } from './port-bridge.js';
import {
  forbidKernelKeyring,
  forbidNamespaceCreation,
  toOciSeccomp,
  type ContainersSeccompProfile,
  type OciSeccomp,
} from './seccomp.js';

export const SANDBOX_ID_PATTERN = /^[a-z0-9][a-z0-9-]{0,62}$/;
const AGENT_SOCKET_NAME = 'agent.sock';
/** A forked sandbox's monitor: the zygote that reaps it and writes its exit status. */
const ZYGOTE_PID_FILE = 'zygote.pid';
/**
 * gVisor's sentry runs its own threads inside the sandbox's pids cgroup; below this it cannot boot
 * (measured: 64 panics, 1024 boots). Processes inside gVisor are then bounded by memory, not pids.
 */
const RUNSC_MIN_PIDS = 1024;

export type { RuntimeCommand };

export interface OciDriverOptions {
  /** Parent directory of every sandbox's state directory. */
  stateDir: string;
  /** Parent directory of the runtimes' own state (`--root`), one subdirectory per runtime. */
  runtimeStateDir: string;
  /** cgroup parent below each hierarchy's root. */
  cgroupParent: string;
  /** The hard memory limit the cgroup parent carries: all sandboxes together stay below it. */
  sandboxMemoryBytes?: number;
  seccompProfilePath: string;
  conmonPath: string;
  /** socat, which bridges a host unix socket to a TCP port inside a sandbox (see openPort). */
  socatPath: string;
  /** First host uid of the id ranges; sandbox n gets [base + n·65536, base + (n+1)·65536). */
  idBase: number;
  /** Upper bound on live sandboxes, which bounds the host id ranges in use. */
  maxSandboxes: number;
  runtimes: Partial<Record<RuntimeName, RuntimeCommand>>;
  /** Where zygotes keep their control sockets, and their code (for sandboxes that fork). */
  zygote?: { controlDir: string; codeDir: string; agentDir: string };
  /** Outbound network for sandboxes that ask for it: the /14 their links come from and their resolver. */
  egress: { subnet: string; dnsServer: string };
  run?: CommandRunner;
}

interface SandboxRecord {
  id: string;
  runtime: RuntimeName;
  slot: number;
  createdAt: string;
  labels?: Record<string, string>;
  /** The sandbox has an egress link to remove. */
  egress?: boolean;
  /** Forked from a zygote, which monitors it (its pid in zygote.pid), not started by conmon. */
  forked?: boolean;
}

/** Host paths where Debian installs each runtime, and the flags this machine type needs. */
export function defaultRuntimes(runtimeStateDir: string): Record<RuntimeName, RuntimeCommand> {
  return {
    runc: { path: '/usr/sbin/runc', args: ['--root', join(runtimeStateDir, 'runc')] },
    crun: { path: '/usr/bin/crun', args: ['--root', join(runtimeStateDir, 'crun')] },
    runsc: {
      path: '/usr/bin/runsc',
      args: [
        '--root',
        join(runtimeStateDir, 'runsc'),
        '--platform=ptrace',
        '--network=none',
        '--host-uds=create',
      ],
    },
  };
}

/** The pid file of whatever reaps the sandbox's init and writes its exit status. */
function monitorPidFile(record: Partial<SandboxRecord>): string {
  return record.forked ? ZYGOTE_PID_FILE : 'conmon.pid';
}

/** What a sandbox's egress set up (`egress.json`); an older server wrote the rule elements alone. */
async function readEgressLink(dir: string): Promise<EgressLink> {
  const saved = JSON.parse(await readFile(join(dir, 'egress.json'), 'utf8').catch(() => '[]')) as
    EgressLink | string[];
  return Array.isArray(saved) ? { elements: saved } : saved;
}

export class OciDriver implements SandboxDriver {
  private readonly run: CommandRunner;
  private readonly seccomp: OciSeccomp;
  private readonly slots: IdSlots;
  private cgroups: CgroupLayout | undefined;
  private loaded: Promise<void> | undefined;
  private readonly network: EgressNetwork;
  private readonly denied = new DeniedWatcher();
  private readonly deniedListeners: ((sandboxId: string, attempt: DeniedConnection) => void)[] = [];
  /** Sandboxes with an egress link, by their host interface: whom a refused connection belongs to. */
  private readonly egressLinks = new Map<string, string>();
  /** The same sandboxes by their address: whom a refused DNS question belongs to. */
  private readonly egressAddresses = new Map<string, string>();
  private readonly zygotes: Zygotes | undefined;

  static fromConfig(config: Config, run?: CommandRunner): OciDriver {
    return new OciDriver({
      stateDir: config.paths.stateDir,
      runtimeStateDir: config.paths.runtimeStateDir,
      cgroupParent: config.cgroupParent,
      sandboxMemoryBytes: config.sandboxMemoryBytes,
      seccompProfilePath: config.seccompProfile,
      conmonPath: config.conmonPath,
      socatPath: config.socatPath,
      egress: { subnet: config.egressSubnet, dnsServer: config.egressDnsServer },
      idBase: config.idBase,
      maxSandboxes: config.maxSandboxes,
      runtimes: defaultRuntimes(config.paths.runtimeStateDir),
      ...(config.zygote && {
        zygote: {
          controlDir: join(config.runDir, 'zygote'),
          codeDir: config.paths.zygoteDir,
          agentDir: config.paths.pythonAgentDir,
        },
      }),
      ...(run ? { run } : {}),
    });
  }

  constructor(private readonly options: OciDriverOptions) {
    this.slots = new IdSlots(options.idBase, options.maxSandboxes);
    this.run = options.run ?? runCommand;
    this.network = new EgressNetwork({
      run: this.run,
      ...options.egress,
      onRefusedName: (address, name) => this.refusedName(address, name),
    });
    const profile = JSON.parse(readFileSync(options.seccompProfilePath, 'utf8')) as ContainersSeccompProfile;
    const [major = '0', minor = '0'] = release().split('.');
    const derived = toOciSeccomp(profile, {
      nodeArch: process.arch,
      capabilities: [],
      kernel: `${major}.${minor}`,
    });
    this.seccomp = forbidKernelKeyring(forbidNamespaceCreation(derived));
    this.zygotes =
      options.zygote &&
      new Zygotes({
        ...options.zygote,
        stateDir: options.stateDir,
        cgroupParent: options.cgroupParent,
        seccomp: this.seccomp,
        run: this.run,
      });
  }

  private dir(id: string): string {
    return join(this.options.stateDir, id);
  }

  private cgroupPath(id: string): string {
    return `/${this.options.cgroupParent}/${id}`;
  }

  private runtime(name: RuntimeName): RuntimeCommand {
    const runtime = this.options.runtimes[name];
    if (!runtime || !existsSync(runtime.path)) {
      throw new AppError(ErrorCode.RuntimeUnavailable, `runtime ${name} is not installed on this host`);
    }
    return runtime;
  }

  /** Loads what is already on the host once: cgroup layout and the id ranges of existing sandboxes. */
  private async load(): Promise<void> {
    this.loaded ??= (async () => {
      this.cgroups = await detectCgroupLayout();
      const { sandboxMemoryBytes } = this.options;
      if (sandboxMemoryBytes !== undefined) {
        // Best effort: a limit below what the sandboxes hold now is refused; memory() shows the one in force.
        await writeMemoryLimit(this.cgroups, `/${this.options.cgroupParent}`, sandboxMemoryBytes).catch(
          () => undefined,
        );
      }
      await mkdir(this.options.stateDir, { recursive: true, mode: 0o711 });
      await this.zygotes?.shareStateDir();
      const records = await this.records();
      for (const record of records) {
        this.slots.mark(record.slot);
        if (record.egress && record.slot >= 0) {
          const at = this.addressing(record.slot);
          this.remember(record.id, at);
          const dir = this.dir(record.id);
          const link = await this.network.restore(at, await readEgressLink(dir));
          await writeFile(join(dir, 'egress.json'), JSON.stringify(link));
        }
      }
      // Sandboxes with egress that outlived a restart are watched again.
      if (this.egressLinks.size > 0) await this.watchDenied();
    })();
    await this.loaded;
  }

  private async records(): Promise<SandboxRecord[]> {
    const records: SandboxRecord[] = [];
    for (const id of await readdir(this.options.stateDir).catch(() => [])) {
      try {
        records.push(JSON.parse(await readFile(join(this.dir(id), 'sandbox.json'), 'utf8')) as SandboxRecord);
      } catch {
        // A directory without a record is a create that died before writing it; destroy() removes it.
        records.push({ id, runtime: 'runc', slot: -1, createdAt: new Date(0).toISOString() });
      }
    }
    return records;
  }

  private toSandbox(record: SandboxRecord): Sandbox {
    return {
      id: record.id,
      runtime: record.runtime,
      agentSocketPath: join(this.dir(record.id), 'agent', AGENT_SOCKET_NAME),
      dataDir: join(this.dir(record.id), 'data'),
      dataOwner: this.slots.sandboxUser(record.slot),
      consoleLogPath: join(this.dir(record.id), 'console.log'),
      labels: record.labels ?? {},
      createdAt: new Date(record.createdAt),
    };
  }

  async create(spec: SandboxSpec): Promise<Sandbox> {
    if (!SANDBOX_ID_PATTERN.test(spec.id)) {
      throw new AppError(
        ErrorCode.InvalidSandboxSpec,
        `sandbox id ${JSON.stringify(spec.id)} must match ${SANDBOX_ID_PATTERN}`,
      );
    }
    const runtime = this.runtime(spec.runtime);
    await this.load();
    const dir = this.dir(spec.id);
    try {
      await mkdir(dir, { mode: 0o711 });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST') {
        throw new AppError(ErrorCode.SandboxAlreadyExists, `sandbox ${spec.id} already exists`);
      }
      throw error;
    }
    const slot = this.slots.take();
    const record: SandboxRecord = {
      id: spec.id,
      runtime: spec.runtime,
      slot,
      createdAt: new Date().toISOString(),
      ...(spec.labels && { labels: spec.labels }),
      ...(spec.egress && { egress: true }),
      ...(spec.fork && { forked: true }),
    };
    try {
      await this.start(spec, record, runtime);
    } catch (error) {
      await this.destroy(spec.id).catch(() => undefined);
      this.slots.giveBack(slot);
      if (error instanceof AppError) throw error;
      throw new AppError(
        ErrorCode.SandboxStartFailed,
        `sandbox ${spec.id} failed to start: ${(error as Error).message}`,
        {
          cause: error,
        },
      );
    }
    return this.toSandbox(record);
  }

  private async start(spec: SandboxSpec, record: SandboxRecord, runtime: RuntimeCommand): Promise<void> {
    const dir = this.dir(spec.id);
    const idBase = this.slots.rangeStart(record.slot);
    const { uid, gid } = this.slots.sandboxUser(record.slot);
    await writeFile(join(dir, 'sandbox.json'), JSON.stringify(record));
    const dataDir = join(dir, 'data');
    const agentDir = join(dir, 'agent');
    await Promise.all(
      ['bundle', 'data', 'agent', 'exit', 'persist', 'attach', 'ports'].map((d) => mkdir(join(dir, d))),
    );
    // Only the sandbox's user (and host root) may reach the agent's socket and the port bridges.
    for (const owned of [agentDir, join(dir, 'ports')]) {
      await chmod(owned, 0o700);
      await chown(owned, uid, gid);
    }
    // The session's files are its user's alone (and root's): no other account on the host reads them.
    const dataMount = {
      target: dataDir,
      options: `size=${spec.resources.dataBytes},mode=0700,uid=${uid},gid=${gid}`,
    };
    // A zygote mounts a forked sandbox's data itself, which saves starting a process here.
    if (!spec.fork) {
      await runChecked(this.run, 'mount', [
        '-t',
        'tmpfs',
        '-o',
        `${dataMount.options},nosuid,nodev`,
        'tmpfs',
        dataDir,
      ]);
    }
    const resources =
      spec.runtime === 'runsc'
        ? { ...spec.resources, pids: Math.max(spec.resources.pids, RUNSC_MIN_PIDS) }
        : spec.resources;
    const link = spec.egress && this.addressing(record.slot);
    const resolvConf = join(dir, 'resolv.conf');
    if (link) await writeFile(resolvConf, `nameserver ${link.gateway}\n`, { mode: 0o644 });
    const config = buildOciConfig(
      { ...spec, resources, rootfs: await realpath(spec.rootfs) },
      {
        dataDir,
        agentSocketDir: agentDir,
        idBase,
        cgroupsPath: this.cgroupPath(spec.id),
        ...(link && { resolvConf }),
      },
      this.seccomp,
    );
    if (spec.fork) {
      await this.fork(spec, spec.fork, config, dataMount);
      return;
    }
    await writeFile(join(dir, 'bundle', 'config.json'), JSON.stringify(config));
    await launchMonitor(this.run, this.options.conmonPath, spec.id, dir, runtime);
    // The process waits for `start`: its network is in place before it runs.
    if (link && spec.egress) {
      const pid = await this.readPid(spec.id, 'init.pid');
      if (pid === undefined) throw new Error('the runtime reported no init pid');
      await this.watchDenied();
      this.remember(spec.id, link);
      const attached = await this.network.attach(pid, link, spec.egress);
      await writeFile(join(dir, 'egress.json'), JSON.stringify(attached));
    }
    await runChecked(this.run, runtime.path, [...runtime.args, 'start', spec.id]);
  }

  /**
   * Starts the sandbox as a fork of its image's zygote: the driver makes its cgroups and limits them
   * as runc would from `config`, and the child builds the rest from the same config.
   */
  private async fork(
    spec: SandboxSpec,
    fork: NonNullable<SandboxSpec['fork']>,
    config: OciConfig,
    dataMount: ForkRequest['dataMount'],
  ): Promise<void> {
    if (!this.zygotes || spec.runtime !== 'runc' || spec.egress) {
      throw new AppError(
        ErrorCode.InvalidSandboxSpec,
        'a forked sandbox runs on runc, without egress, on a driver with zygotes',
      );
    }
    const dir = this.dir(spec.id);
    const { resources } = config.linux;
    const cgroups = createCgroups(this.cgroups!, this.cgroupPath(spec.id), {
      memoryBytes: resources.memory.limit,
      pids: resources.pids.limit,
      cpuQuotaUs: resources.cpu.quota,
      cpuPeriodUs: resources.cpu.period,
      cpuShares: resources.cpu.shares,
    });
    const start = config.linux.uidMappings[0]!;
    await this.zygotes.spawn(this.cgroups!, spec.rootfs, fork.preload, {
      config,
      cgroups,
      consoleLog: join(dir, 'console.log'),
      exitFile: join(dir, 'exit', spec.id),
      initPidFile: join(dir, 'init.pid'),
      monitorPidFile: join(dir, ZYGOTE_PID_FILE),
      agentSocket: fork.agentSocket,
      agentCodeDir: fork.agentCodeDir,
      dataMount,
      warmUp: fork.warmUp,
      idMap: `${start.containerID} ${start.hostID} ${start.size}\n`,
    });
  }

  /** The sandbox's egress link: its /30 follows from its host id range, unique on the host. */
  private addressing(slot: number): SandboxAddressing {
    return addressing(this.options.egress.subnet, Math.floor(this.options.idBase / ID_RANGE_SIZE) + slot);
  }

  /** Notes whom the egress link at `at` belongs to. */
  private remember(id: string, at: SandboxAddressing): void {
    this.egressLinks.set(at.hostInterface, id);
    this.egressAddresses.set(at.address, id);
  }

  /** A DNS question the filter refused, as a refused `dns` attempt (the pool folds a resolver's retries). */
  private refusedName(address: string, name: string): void {
    const id = this.egressAddresses.get(address);
    if (id === undefined) return;
    for (const listener of this.deniedListeners) {
      listener(id, { destination: name, protocol: 'dns', port: 53, sourcePort: null });
    }
  }

  onEgressDenied(listener: (sandboxId: string, attempt: DeniedConnection) => void): void {
    this.deniedListeners.push(listener);
  }

  /** Starts reading the kernel's log of refused connections, once, and maps each to its sandbox. */
  private async watchDenied(): Promise<void> {
    await this.denied.start((attempt) => {
      const id = this.egressLinks.get(attempt.hostInterface);
      if (id === undefined) return;
      const { destination, protocol, port, sourcePort } = attempt;
      for (const listener of this.deniedListeners) listener(id, { destination, protocol, port, sourcePort });
    });
  }

  private readPid(id: string, file: 'init.pid' | 'conmon.pid'): Promise<number | undefined> {
    return readPidFile(join(this.dir(id), file));
  }

  /** The init's host pid, only while that pid still belongs to this sandbox's cgroup. */
  private async livePid(id: string): Promise<number | undefined> {
    const pid = await this.readPid(id, 'init.pid');
    if (pid === undefined || !isAlive(pid)) return undefined;
    const cgroup = await readFile(`/proc/${pid}/cgroup`, 'utf8').catch(() => '');
    return cgroup.includes(this.cgroupPath(id)) ? pid : undefined;
  }

  async inspect(id: string): Promise<SandboxState> {
    await this.load();
    const record = await this.record(id);
    const pid = await this.livePid(id);
    if (pid !== undefined) return { status: 'running', pid };
    // The init is gone; its monitor writes the exit file a moment after reaping it.
    const code = await awaitExitCode(id, this.dir(id), monitorPidFile(record));
    if (code === undefined || Number.isNaN(code)) return { status: 'unknown' };
    const cgroupPath = this.cgroupPath(id);
    const oom = {
      kills: await readOomKills(this.cgroups!, cgroupPath),
      notified: existsSync(join(this.dir(id), 'persist', 'oom')),
      ownLimitReached: await reachedOwnLimit(this.cgroups!, cgroupPath),
    };
    return {
      status: 'exited',
      cause: classifyExit(code, oom),
      exitCode: code,
      signal: signalName(code),
    };
  }

  async memory(): Promise<SandboxesMemory> {
    await this.load();
    return readMemory(this.cgroups!, `/${this.options.cgroupParent}`);
  }

  async preparedMemory(rootfs: string, preload: string[]): Promise<number | undefined> {
    await this.load();
    return this.zygotes?.memory(this.cgroups!, rootfs, preload);
  }

  async usage(id: string): Promise<ResourceUsage | undefined> {
    await this.load();
    return readUsage(this.cgroups!, this.cgroupPath(id));
  }

  async setCpuLimit(id: string, cpu: number): Promise<void> {
    await this.load();
    if ((await this.livePid(id)) === undefined) {
      throw new AppError(ErrorCode.SandboxNotFound, `sandbox ${id} is not running`);
    }
    writeCpuLimit(this.cgroups!, this.cgroupPath(id), cpu, CPU_PERIOD_US);
  }

  async signal(id: string, signal: 'SIGINT' | 'SIGKILL'): Promise<void> {
    const pid = await this.livePid(id);
    if (pid === undefined) throw new AppError(ErrorCode.SandboxNotFound, `sandbox ${id} is not running`);
    process.kill(pid, signal);
  }

  async openPort(id: string, port: number): Promise<string> {
    await this.load();
    const record = await this.record(id);
    const pid = await this.livePid(id);
    if (pid === undefined) throw new AppError(ErrorCode.SandboxNotFound, `sandbox ${id} is not running`);
    const user = this.slots.sandboxUser(record.slot);
    return openBridge(this.options.socatPath, { id, dir: this.dir(id), pid, user }, port);
  }

  async isListening(id: string, port: number): Promise<boolean> {
    const pid = await this.livePid(id);
    return pid !== undefined && isListening(pid, port);
  }

  private async record(id: string): Promise<SandboxRecord> {
    try {
      return JSON.parse(await readFile(join(this.dir(id), 'sandbox.json'), 'utf8')) as SandboxRecord;
    } catch {
      throw new AppError(ErrorCode.SandboxNotFound, `sandbox ${id} does not exist`);
    }
  }

  async destroy(id: string): Promise<void> {
    await this.load();
    const dir = this.dir(id);
    if (!existsSync(dir)) return;
    await closeBridges(dir);
    const record = JSON.parse(
      await readFile(join(dir, 'sandbox.json'), 'utf8').catch(() => '{}'),
    ) as Partial<SandboxRecord>;
    const runtime = this.options.runtimes[record.runtime ?? 'runc'];
    const pid = await this.livePid(id);
    if (pid !== undefined) process.kill(pid, 'SIGKILL');
    // conmon lingers for a second or two after writing the exit status; its work is done by then.
    await awaitExitCode(id, dir, monitorPidFile(record));
    if (!record.forked) {
      const conmon = await this.readPid(id, 'conmon.pid');
      if (conmon && isAlive(conmon)) process.kill(conmon, 'SIGKILL');
      if (runtime) await this.run(runtime.path, [...runtime.args, 'delete', '--force', id]);
    }
    if (record.egress && record.slot !== undefined && record.slot >= 0) {
      const at = this.addressing(record.slot);
      await this.network.detach(at, await readEgressLink(dir));
      this.egressLinks.delete(at.hostInterface);
      this.egressAddresses.delete(at.address);
    }
    const cgroupPath = this.cgroupPath(id);
    let left = await removeCgroups(this.cgroups!, cgroupPath);
    for (let tries = 0; left.length > 0 && tries < 100; tries++) {
      await sleep(WAIT_STEP_MS);
      left = await removeCgroups(this.cgroups!, cgroupPath);
    }
    // A zygote unmounts a forked sandbox's data without a process start; unmountBelow takes what is left.
    if (record.forked) await this.zygotes?.unmount(join(dir, 'data')).catch(() => undefined);
    await this.unmountBelow(dir);
    await rm(dir, { recursive: true, force: true });
    if (record.slot !== undefined) this.slots.giveBack(record.slot);
    if (left.length > 0) {
      throw new AppError(
        ErrorCode.SandboxRuntimeError,
        `sandbox ${id}: cgroups could not be removed: ${left.join(', ')}`,
      );
    }
  }

  /** Unmounts everything under `dir`, deepest first, so removing it never reaches into a mount. */
  private async unmountBelow(dir: string): Promise<void> {
    const mounts = (await readFile('/proc/self/mounts', 'utf8'))
      .split('\n')
      .map((line) => line.split(' ')[1] ?? '')
      .filter((target) => target.startsWith(`${dir}/`))
      .sort()
      .reverse();
    for (const target of mounts) await runChecked(this.run, 'umount', ['-l', target]);
  }

  async list(): Promise<Sandbox[]> {
    await this.load();
    return (await this.records()).map((r) => this.toSandbox(r));
  }

  /** Leftover cgroup directories of a sandbox id (for tests and the reconciler). */
  async leftoverCgroups(id: string): Promise<string[]> {
    await this.load();
    return existingCgroups(this.cgroups!, this.cgroupPath(id));
  }
}
