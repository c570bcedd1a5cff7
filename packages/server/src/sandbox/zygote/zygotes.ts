/**
 * @module sandbox/zygote/zygotes
 * The zygotes on this host: one fork server per interpreter image and preload list
 * (interpreter/zygote/zygote.py). Each imported the agent and the preload once; a sandbox forked from
 * it shares those pages copy-on-write instead of importing them again. A zygote outlives the server
 * that started it, like conmon does: it reaps its sandboxes and writes their exit status, and a
 * restarted server connects to it again. It exits once no server is connected and none of its
 * sandboxes is left.
 *
 * Layout of one zygote, `<controlDir>/<key>/`: zygote.sock (its control socket), seccomp.bpf (the
 * filter every child loads), root/ (its root's mount point), zygote.log.
 */

import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, open, readFile, readdir, realpath, rmdir, stat, writeFile } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { dirname, join } from 'node:path';

import { AppError, ErrorCode } from '../../errors.js';
import { runChecked, type CommandRunner } from '../command.js';
import { memoryDir, readMemoryUsage, type CgroupLayout } from '../oci/cgroups.js';
import { sleep } from '../oci/monitor.js';
import type { OciConfig } from '../oci/oci-spec.js';
import type { OciSeccomp } from '../oci/seccomp.js';

/** How long a zygote may take to import the agent and its preload list. */
const START_TIMEOUT_MS = 60_000;
const CONNECT_STEP_MS = 20;
const ZYGOTE_CGROUP_PREFIX = 'zygote-';

export interface ZygotesOptions {
  /** Where each zygote keeps its socket, filter and root (`<runDir>/zygote`). */
  controlDir: string;
  /** interpreter/zygote: zygote.py, start.sh, seccomp_bpf.py. */
  codeDir: string;
  /** The agent's code, imported by every zygote. */
  agentDir: string;
  /** The sandboxes' state directories, bound into each zygote. */
  stateDir: string;
  /** The cgroup parent the zygotes' own cgroups go under, beside the sandboxes'. */
  cgroupParent: string;
  seccomp: OciSeccomp;
  run: CommandRunner;
}

/** What the zygote needs to make a sandbox: the OCI config, with host paths as the zygote sees them. */
export interface ForkRequest {
  config: OciConfig;
  cgroups: string[];
  consoleLog: string;
  exitFile: string;
  /** Where the zygote writes the sandbox's pid 1 and its own pid, as conmon writes its pid files. */
  initPidFile: string;
  monitorPidFile: string;
  agentSocket: string;
  agentCodeDir: string;
  /**
   * The sandbox's data tmpfs: the zygote mounts it at `target` in the requesting server's mount
   * namespace (nosuid, nodev), from where it reaches the zygote's.
   */
  dataMount: { target: string; options: string };
  /** Rehearse a first request before the agent serves, if the spare did not (see SandboxSpec.fork). */
  warmUp: boolean;
  /** The sandbox's host id range, as /proc/<pid>/uid_map and gid_map take it. */
  idMap: string;
}

/** The zygote's answer to a request: a spawn's has the sandbox's pid 1. */
interface ZygoteReply {
  ok: boolean;
  pid?: number;
  error?: string;
}

interface Connection {
  socket: Socket;
  /** Requests go one at a time: the zygote answers each in turn. */
  queue: Promise<unknown>;
  lines: string[];
  waiting: ((line: string | undefined) => void)[];
}

export class Zygotes {
  private readonly connections = new Map<string, Promise<Connection>>();
  private filter: Promise<Buffer> | undefined;

  constructor(private readonly options: ZygotesOptions) {}

  /**
   * Forks a sandbox from the zygote of `rootfs` with `preload`, starting that zygote if none runs.
   * The zygote writes the sandbox's pid files as it learns the pid, before it answers.
   */
  async spawn(layout: CgroupLayout, rootfs: string, preload: string[], request: ForkRequest): Promise<void> {
    const key = await this.keyOf(rootfs, preload);
    let connection = this.connections.get(key);
    if (!connection) {
      const started = this.connect(layout, key, rootfs, preload);
      connection = started;
      this.connections.set(key, started);
      const forget = () => {
        if (this.connections.get(key) === started) this.connections.delete(key);
      };
      // A zygote that failed to start, or died since, is started again by the next spawn.
      started.then((c) => c.socket.on('close', forget), forget);
    }
    const reply = await this.ask(await connection, { op: 'spawn', ...this.translated(request) });
    if (!reply.ok || reply.pid === undefined)
      throw new Error(`the zygote could not fork the sandbox: ${reply.error ?? 'no pid'}`);
  }

  /**
   * Unmounts a forked sandbox's data through a zygote this server is connected to, which saves
   * starting a process for it. Rejects when none is: the caller then unmounts it itself.
   */
  async unmount(target: string): Promise<void> {
    const [connected] = this.connections.values();
    if (!connected) throw new Error('no zygote is connected');
    const reply = await this.ask(await connected, { op: 'unmount', target });
    if (!reply.ok) throw new Error(`the zygote could not unmount ${target}: ${reply.error}`);
  }

  /** What the zygote of `rootfs` with `preload` holds (its cgroup's usage); undefined while none runs. */
  async memory(layout: CgroupLayout, rootfs: string, preload: string[]): Promise<number | undefined> {
    const key = await this.keyOf(rootfs, preload);
    if (!this.connections.has(key)) return undefined;
    return readMemoryUsage(layout, this.cgroupPath(key));
  }

  /** Host paths below the state and agent directories, as the zygote's mount namespace has them. */
  private translated(request: ForkRequest) {
    const { stateDir, agentDir } = this.options;
    const inZygote = (path: string) => {
      if (path === stateDir || path.startsWith(`${stateDir}/`))
        return `/run/zygote/state${path.slice(stateDir.length)}`;
      if (path === agentDir) return '/run/zygote/agent';
      throw new Error(`the zygote cannot reach ${path}`);
    };
    const mounts = request.config.mounts.map((mount) =>
      mount.type === 'bind' && mount.source ? { ...mount, source: inZygote(mount.source) } : mount,
    );
    return {
      config: {
        process: request.config.process,
        hostname: request.config.hostname,
        mounts,
        maskedPaths: request.config.linux.maskedPaths,
        readonlyPaths: request.config.linux.readonlyPaths,
        sysctl: request.config.linux.sysctl,
      },
      cgroups: request.cgroups,
      consoleLog: inZygote(request.consoleLog),
      exitFile: inZygote(request.exitFile),
      initPidFile: inZygote(request.initPidFile),
      monitorPidFile: inZygote(request.monitorPidFile),
      agentSocket: request.agentSocket,
      agentCodeDir: request.agentCodeDir,
      dataMount: request.dataMount,
      warmUp: request.warmUp,
      uidMap: request.idMap,
      gidMap: request.idMap,
    };
  }

  /**
   * One zygote per image, agent and preload list as they are now: a rebuilt image gets a new one, and
   * so does a change to any module of the agent (the zygote imported them all: envd, rich output…).
   */
  private async keyOf(rootfs: string, preload: string[]): Promise<string> {
    const image = await realpath(rootfs);
    const recipe = await readFile(join(image, 'etc', 'sandpool', 'image.json'), 'utf8').catch(() => '');
    const modules = (await readdir(this.options.agentDir))
      .filter((name) => name.endsWith('.py'))
      .sort()
      .map((name) => join(this.options.agentDir, name));
    const code = await Promise.all(
      [...modules, join(this.options.codeDir, 'zygote.py')].map((file) =>
        stat(file).then((s) => `${file}:${s.mtimeMs}:${s.size}`),
      ),
    );
    return createHash('sha256')
      .update(JSON.stringify([image, recipe, code, preload]))
      .digest('hex')
      .slice(0, 16);
  }

  /** Connects to the key's zygote, starting it when none answers. */
  private async connect(
    layout: CgroupLayout,
    key: string,
    rootfs: string,
    preload: string[],
  ): Promise<Connection> {
    const dir = join(this.options.controlDir, key);
    const socketPath = join(dir, 'zygote.sock');
    const running = await this.open(socketPath).catch(() => undefined);
    if (running) return running;
    await mkdir(join(dir, 'root'), { recursive: true, mode: 0o700 });
    await writeFile(join(dir, 'seccomp.bpf'), await this.seccompFilter());
    const cgroups = await this.zygoteCgroups(layout, key);
    const log = await open(join(dir, 'zygote.log'), 'a');
    try {
      const child = spawn(
        'unshare',
        [
          '--mount',
          // Mounts made on the host later (each sandbox's data) reach the zygote; none go back.
          '--propagation',
          'slave',
          '/bin/sh',
          join(this.options.codeDir, 'start.sh'),
          join(dir, 'root'),
          await realpath(rootfs),
          this.options.stateDir,
          this.options.agentDir,
          this.options.codeDir,
          dir,
          cgroups.join(' '),
          preload.join(','),
        ],
        { detached: true, stdio: ['ignore', log.fd, log.fd] },
      );
      child.unref();
      const deadline = Date.now() + START_TIMEOUT_MS;
      for (;;) {
        const connection = await this.open(socketPath).catch(() => undefined);
        if (connection) return connection;
        if (child.exitCode !== null || Date.now() > deadline) {
          const said = (await readFile(join(dir, 'zygote.log'), 'utf8').catch(() => ''))
            .trim()
            .split('\n')
            .slice(-3);
          throw new AppError(
            ErrorCode.SandboxStartFailed,
            `the zygote did not start: ${said.join(' | ') || 'no output'}`,
          );
        }
        await sleep(CONNECT_STEP_MS);
      }
    } finally {
      await log.close();
    }
  }

  /**
   * Makes the sandboxes' state directory a shared mount, before the driver mounts anything more in
   * it: each sandbox's /mnt/data, a tmpfs mounted there, then reaches the zygotes (whose copies are
   * slaves of it) and the children they fork. A recursive bind keeps the mounts already there.
   */
  async shareStateDir(): Promise<void> {
    const { stateDir, run } = this.options;
    const mountPoint = (await readFile('/proc/self/mountinfo', 'utf8'))
      .split('\n')
      .find((line) => line.split(' ')[4] === stateDir);
    if (mountPoint?.includes(' shared:')) return;
    if (!mountPoint) await runChecked(run, 'mount', ['--rbind', stateDir, stateDir]);
    await runChecked(run, 'mount', ['--make-shared', stateDir]);
  }

  /** The zygote's own memory cgroup, under the sandboxes' parent: their limit covers what it shares. */
  private async zygoteCgroups(layout: CgroupLayout, key: string): Promise<string[]> {
    const dir = memoryDir(layout, this.cgroupPath(key));
    const parent = dirname(dir);
    // Zygotes that exited leave their cgroups behind; a live one's refuses to go (EBUSY).
    for (const name of await readdir(parent).catch(() => [])) {
      if (name.startsWith(ZYGOTE_CGROUP_PREFIX)) await rmdir(join(parent, name)).catch(() => undefined);
    }
    await mkdir(dir, { recursive: true });
    return [join(dir, 'cgroup.procs')];
  }

  /** The zygote's cgroup below each hierarchy's root, beside the sandboxes'. */
  private cgroupPath(key: string): string {
    return `/${this.options.cgroupParent}/${ZYGOTE_CGROUP_PREFIX}${key}`;
  }

  /** The sandboxes' seccomp profile as a BPF program, compiled once by the host's libseccomp. */
  private seccompFilter(): Promise<Buffer> {
    this.filter ??= (async () => {
      await mkdir(this.options.controlDir, { recursive: true, mode: 0o700 });
      const out = join(this.options.controlDir, 'seccomp.bpf');
      await runChecked(
        this.options.run,
        '/usr/bin/python3',
        [join(this.options.codeDir, 'seccomp_bpf.py'), out],
        {
          input: JSON.stringify(this.options.seccomp),
        },
      );
      return readFile(out);
    })();
    this.filter.catch(() => {
      this.filter = undefined;
    });
    return this.filter;
  }

  /** Connects to a running zygote and reads its hello. */
  private open(socketPath: string): Promise<Connection> {
    return new Promise((resolve, reject) => {
      const socket = connect(socketPath);
      const connection: Connection = { socket, queue: Promise.resolve(), lines: [], waiting: [] };
      let buffered = '';
      socket.setEncoding('utf8');
      socket.on('data', (chunk: string) => {
        buffered += chunk;
        let newline = buffered.indexOf('\n');
        while (newline !== -1) {
          const line = buffered.slice(0, newline);
          buffered = buffered.slice(newline + 1);
          const waiter = connection.waiting.shift();
          if (waiter) waiter(line);
          else connection.lines.push(line);
          newline = buffered.indexOf('\n');
        }
      });
      socket.on('close', () => {
        for (const waiter of connection.waiting.splice(0)) waiter(undefined);
      });
      socket.once('error', reject);
      socket.once('connect', () => {
        this.nextLine(connection)
          .then((hello) => {
            const parsed = JSON.parse(hello) as { zygote?: number; pid?: number };
            if (parsed.zygote !== 1 || !parsed.pid) throw new Error(`not a zygote: ${hello}`);
            // The server's other work keeps it running; an idle connection must not.
            socket.unref();
            socket.removeListener('error', reject);
            // A zygote that dies fails the requests in flight; the next spawn starts another.
            socket.on('error', () => socket.destroy());
            resolve(connection);
          })
          .catch(reject);
      });
    });
  }

  private nextLine(connection: Connection): Promise<string> {
    const line = connection.lines.shift();
    if (line !== undefined) return Promise.resolve(line);
    return new Promise((resolve, reject) => {
      connection.waiting.push((next) =>
        next === undefined ? reject(new Error('the zygote closed its socket')) : resolve(next),
      );
    });
  }

  private ask(connection: Connection, request: object): Promise<ZygoteReply> {
    const answer = connection.queue.then(async () => {
      connection.socket.write(`${JSON.stringify(request)}\n`);
      return JSON.parse(await this.nextLine(connection)) as ZygoteReply;
    });
    connection.queue = answer.catch(() => undefined);
    return answer;
  }
}
