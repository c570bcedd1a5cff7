/**
 * @module pool/interpreter-instance
 * One code-interpreter sandbox: a sandbox from the driver with the Python or Node agent running in
 * it, and the host's connection to that agent. Executions that outlive their time limit are
 * interrupted; a session whose interpreter dies is reported lost with the reason the driver found,
 * never silently replaced.
 */

import { access } from 'node:fs/promises';
import { dirname, join } from 'node:path';

import { AppError, ErrorCode } from '../errors.js';
import { readConsoleTail } from './console-log.js';
import { preloadModules } from './pool-spec.js';
import {
  AgentClient,
  type AgentClientOptions,
  type AgentRequest,
  type AgentResult,
} from '../interpreter/agent-client.js';
import { EnvdClient } from '../interpreter/envd-client.js';
import type { ContextReply, ContextRequest, ProcessReply, ProcessRequest } from '../interpreter/protocol.js';
import type {
  ResourceUsage,
  RuntimeName,
  Sandbox,
  SandboxDriver,
  SandboxResources,
  SandboxState,
} from '../sandbox/driver.js';

/**
 * How long a listening agent may stay silent before its code is taken for orphaned and interrupted.
 * The wait starts once the agent listens: an agent still starting (slow under load, or behind
 * gVisor) would die of a SIGINT in the middle of its imports.
 */
const ORPHANED_EXECUTION_WAIT_MS = 500;

/** Where the agent's code and socket appear inside the sandbox. */
const AGENT_CODE_DIR = '/opt/sandpool/agent';
const AGENT_SOCKET = '/run/sandpool/agent.sock';
/** A closed agent connection means the sandbox is dying; how long to wait for it to be gone. */
const END_WAIT_MS = 2_000;
const END_POLL_MS = 10;
/**
 * CPU the sandbox may use while the interpreter boots. Python's start-up is ~50 ms of CPU; under a
 * 0.25-core quota that stretches over several 100 ms CFS periods. The boot runs only Sandpool's
 * agent, so it gets a full core, and the pool's limit is set before the sandbox is handed out.
 */
const BOOT_CPU = 1;
/** How long the envd agent has to listen once the interpreter agent said it started. */
const ENVD_CONNECT_MS = 10_000;

export interface InterpreterImage {
  /** Host path of the rootfs (images/python/build.sh, images/node/build.sh). */
  rootfs: string;
  /** Host path of the agent's code (interpreter/python or interpreter/node), bound read-only. */
  agentDir: string;
  /** Which agent the image runs; Python when not named. */
  agent?: 'python' | 'node';
}

export interface InterpreterInstanceOptions {
  id: string;
  runtime: RuntimeName;
  image: InterpreterImage;
  resources: SandboxResources;
  agent: AgentClientOptions;
  /** Outbound network (see SandboxSpec.egress); loopback only without. */
  egress?: { allow: string[] };
  /** Modules the agent imports before it answers (the Python agent only); null: the pool's default. */
  preload?: string[] | null;
  /**
   * Fork the sandbox from the image's zygote, which imported the agent and `preload` once, where it
   * can (the Python agent on runc without egress); start it from the image otherwise.
   */
  fork?: boolean;
  /** A forked sandbox's agent rehearses a first request before it serves (see SandboxSpec.fork). */
  warmUp?: boolean;
}

/**
 * The container's command: tini reaps orphans and forwards signals; the agent is its only child (the
 * Node agent's launcher execs into it).
 */
export const AGENT_COMMANDS = {
  python: ['/usr/bin/tini', '--', '/usr/bin/python3', '-I', `${AGENT_CODE_DIR}/agent.py`, AGENT_SOCKET],
  node: ['/usr/bin/tini', '--', '/bin/sh', `${AGENT_CODE_DIR}/launch.sh`, AGENT_SOCKET],
};

/** Whether a sandbox is forked from its image's zygote: where it can, the Python agent on runc without egress. */
export function isForked(options: {
  fork?: boolean;
  agent: 'python' | 'node';
  runtime: RuntimeName;
  egress: boolean;
}): boolean {
  return options.fork === true && options.agent === 'python' && options.runtime === 'runc' && !options.egress;
}

/** How the Python agent hears which modules to import before it answers (it removes the variable). */
const PRELOAD_VARIABLE = 'SANDPOOL_PRELOAD';

export type SandboxEnd = Exclude<SandboxState, { status: 'running' }>;

/**
 * What the sandbox of an agent that never answered was doing, for the start failure's message: still
 * running, or how it ended, with the last line the agent printed (the image is Sandpool's own, so its
 * output holds no tenant's data).
 */
async function whyNoAgent(driver: SandboxDriver, sandbox: Sandbox): Promise<string | undefined> {
  const state = await driver.inspect(sandbox.id).catch(() => undefined);
  if (!state) return undefined;
  const said = (await readConsoleTail(sandbox.consoleLogPath, 1).catch(() => []))[0]?.text.trim();
  const how =
    state.status === 'running'
      ? 'the sandbox still runs'
      : state.status === 'exited'
        ? `the sandbox ended: ${state.cause}, exit code ${state.exitCode}`
        : 'the sandbox is gone';
  return said ? `${how}; its last output: ${said.slice(0, 300)}` : how;
}

export class InterpreterInstance {
  private ended: SandboxEnd | undefined;
  private readonly endListeners: ((state: SandboxEnd) => void)[] = [];
  /** The connection to the sandbox's envd agent, once a request through E2B's API needed it. */
  private envdClient: Promise<EnvdClient> | undefined;

  private constructor(
    readonly sandbox: Sandbox,
    private readonly agent: AgentClient,
    private readonly driver: SandboxDriver,
  ) {
    agent.onClose(() => void this.noticeEnd());
  }

  /** Creates the sandbox and waits until its agent answers. */
  static async start(
    driver: SandboxDriver,
    options: InterpreterInstanceOptions,
  ): Promise<InterpreterInstance> {
    const recipe = join(options.image.rootfs, 'etc', 'sandpool', 'image.json');
    await access(recipe).catch((error: unknown) => {
      throw new AppError(
        ErrorCode.RuntimeUnavailable,
        `no ${options.image.agent ?? 'python'} interpreter image at ${options.image.rootfs}: run scripts/setup.sh, which builds it`,
        { cause: error },
      );
    });
    const agent = options.image.agent ?? 'python';
    const forked = isForked({ ...options, agent, egress: options.egress !== undefined });
    const preload = options.preload === undefined ? [] : preloadModules(options.preload, forked);
    const sandbox = await driver.create({
      id: options.id,
      runtime: options.runtime,
      rootfs: options.image.rootfs,
      command: AGENT_COMMANDS[agent],
      env: {
        MPLBACKEND: 'Agg',
        ...(!forked && preload.length > 0 && { [PRELOAD_VARIABLE]: preload.join(',') }),
      },
      ...(forked && {
        fork: {
          preload,
          agentCodeDir: AGENT_CODE_DIR,
          agentSocket: AGENT_SOCKET,
          warmUp: options.warmUp ?? true,
        },
      }),
      resources: { ...options.resources, cpu: Math.max(options.resources.cpu, BOOT_CPU) },
      readOnlyBinds: [{ source: options.image.agentDir, destination: AGENT_CODE_DIR }],
      ...(options.egress && { egress: options.egress }),
    });
    try {
      const session = await InterpreterInstance.attach(driver, sandbox, options.agent);
      // Only the agent has run so far; the pool's own limit applies before any user code does.
      await driver.setCpuLimit(sandbox.id, options.resources.cpu);
      return session;
    } catch (error) {
      const why = await whyNoAgent(driver, sandbox);
      await driver.destroy(sandbox.id).catch(() => undefined);
      if (error instanceof AppError && why) {
        throw new AppError(error.code, `${error.message} (${why})`, { cause: error });
      }
      throw error;
    }
  }

  /**
   * Connects to the agent of a sandbox that already runs, e.g. after a server restart. The agent
   * serves one connection at a time: if the previous server died while code ran, the agent greets
   * only once that code ends. That execution's result is lost with its server, so code still
   * running after a short wait is interrupted rather than waited for.
   */
  static async attach(
    driver: SandboxDriver,
    sandbox: Sandbox,
    agent: AgentClientOptions,
  ): Promise<InterpreterInstance> {
    const control = {
      interrupt: () => driver.signal(sandbox.id, 'SIGINT'),
      kill: () => driver.signal(sandbox.id, 'SIGKILL'),
    };
    const client = await AgentClient.connect(
      sandbox.agentSocketPath,
      control,
      agent,
      ORPHANED_EXECUTION_WAIT_MS,
    );
    return new InterpreterInstance(sandbox, client, driver);
  }

  get id(): string {
    return this.sandbox.id;
  }

  /** How the sandbox ended, once it has. */
  get endState(): SandboxEnd | undefined {
    return this.ended;
  }

  /**
   * Called once if the sandbox ends by itself (its agent's connection closes), with how it ended.
   * Not called for {@link destroy}.
   */
  onEnd(listener: (state: SandboxEnd) => void): void {
    this.endListeners.push(listener);
  }

  /** Never rejects: a sandbox whose end cannot be read has ended in an unknown way. */
  private async noticeEnd(): Promise<void> {
    const state = await this.waitForEnd().catch((): SandboxEnd => ({ status: 'unknown' }));
    // An agent that hung up while its sandbox still runs is as good as gone.
    this.ended ??= state.status === 'running' ? { status: 'unknown' } : state;
    for (const listener of this.endListeners.splice(0)) listener(this.ended);
  }

  usage(): Promise<ResourceUsage | undefined> {
    return this.driver.usage(this.id);
  }

  execute(options: AgentRequest): Promise<AgentResult> {
    return this.withAgent(() => this.agent.execute(options));
  }

  processes(request: ProcessRequest): Promise<ProcessReply> {
    return this.withAgent(() => this.agent.process(request));
  }

  contexts(request: ContextRequest): Promise<ContextReply> {
    return this.withAgent(() => this.agent.context(request));
  }

  /** Sends a request to the agent; a connection that drops because the sandbox ended reports it lost. */
  private async withAgent<T>(send: () => Promise<T>): Promise<T> {
    if (this.ended) throw this.lostError(this.ended);
    try {
      return await send();
    } catch (error) {
      if (
        error instanceof AppError &&
        (error.code === ErrorCode.AgentUnavailable || error.code === ErrorCode.SessionLost)
      ) {
        const state = await this.waitForEnd();
        if (state.status !== 'running') {
          this.ended = state;
          throw this.lostError(state, error);
        }
      }
      throw error;
    }
  }

  /** The driver's view once the sandbox has stopped, or `running` if it outlives the wait. */
  private async waitForEnd(): Promise<SandboxState> {
    for (let waited = 0; ; waited += END_POLL_MS) {
      const state = await this.driver.inspect(this.id).catch((): SandboxEnd => ({ status: 'unknown' }));
      if (state.status !== 'running' || waited >= END_WAIT_MS) return state;
      await new Promise((resolve) => setTimeout(resolve, END_POLL_MS));
    }
  }

  private lostError(state: SandboxEnd, cause?: unknown): AppError {
    const why = state.status === 'exited' ? state.cause : 'unknown';
    return new AppError(
      ErrorCode.SessionLost,
      `the session's interpreter ended (${why}); its state is gone`,
      {
        cause,
        details:
          state.status === 'exited'
            ? { reason: state.cause, exitCode: state.exitCode, signal: state.signal }
            : { reason: 'unknown' },
      },
    );
  }

  /** A host socket bridged to `port` on the sandbox's loopback (api/e2b's sandbox ports). */
  openPort(port: number): Promise<string> {
    return this.driver.openPort(this.sandbox.id, port);
  }

  ping(): Promise<{ executions: number }> {
    return this.agent.ping();
  }

  /**
   * The sandbox's envd agent (E2B's services), started through the interpreter agent the first time
   * it is needed and connected once; a dropped connection is made again.
   */
  envd(): Promise<EnvdClient> {
    if (this.ended) return Promise.reject(this.lostError(this.ended));
    const connect = async () => {
      const socket = await this.withAgent(() => this.agent.startEnvd());
      return EnvdClient.connect(join(dirname(this.sandbox.agentSocketPath), socket), ENVD_CONNECT_MS);
    };
    this.envdClient = (this.envdClient ?? connect()).then((client) => (client.isClosed ? connect() : client));
    this.envdClient.catch(() => (this.envdClient = undefined));
    return this.envdClient;
  }

  private closeEnvd(): void {
    void this.envdClient?.then((client) => client.close()).catch(() => undefined);
    this.envdClient = undefined;
  }

  /** Closes the host's connection and forgets the listeners; the sandbox runs on. */
  release(): void {
    this.endListeners.length = 0;
    this.closeEnvd();
    this.agent.close();
  }

  async destroy(): Promise<void> {
    this.endListeners.length = 0;
    this.closeEnvd();
    this.agent.close();
    await this.driver.destroy(this.id);
  }
}
