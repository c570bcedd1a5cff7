/**
 * @module pool/container-instance
 * One custom container sandbox: the pool's image run by the driver, started when its port listens
 * and its startup probe passes, then watched: an exit ends it with the exit code, failing liveness
 * checks end it as unhealthy. The session proxy reaches its target port through a unix socket bridged
 * into its network namespace, so the sandbox needs no network interface at all.
 */

import { AppError, ErrorCode } from '../errors.js';
import type {
  ResourceUsage,
  RuntimeName,
  Sandbox,
  SandboxDriver,
  SandboxResources,
} from '../sandbox/driver.js';
import type { PulledImage } from '../sandbox/image/image-puller.js';
import type { ConsoleLogArchive } from './console-log.js';
import type { EndState } from './instance.js';
import type { ContainerTemplate, Probe } from './pool-spec.js';
import { runProbe } from './probes.js';

/** How often the sandbox's process is checked for an exit. */
const EXIT_CHECK_MS = 500;
/** How often the target port is checked while the container starts. */
const PORT_POLL_MS = 20;
/** How long a container without a startup probe may take to listen on its target port. */
const DEFAULT_STARTUP_SECONDS = 60;
/** CPU while the container boots (like the interpreter's); the pool's limit applies once it is up. */
const BOOT_CPU = 1;
export const CONTAINER_LABEL = 'sandpool.container';

/** What a sandbox needs to be taken up again after a restart, kept in its labels. */
interface ContainerLabel {
  targetPort: number;
  probes: Probe[];
}

export interface ContainerInstanceOptions {
  id: string;
  runtime: RuntimeName;
  image: PulledImage;
  container: ContainerTemplate;
  /** The container's env, secrets resolved. */
  env: Record<string, string>;
  resources: SandboxResources;
  egress?: { allow: string[] };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Image env (`K=V` entries) under the pool's env. */
function mergedEnv(image: string[], pool: Record<string, string>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const entry of image) {
    const eq = entry.indexOf('=');
    if (eq > 0) env[entry.slice(0, eq)] = entry.slice(eq + 1);
  }
  return { ...env, ...pool };
}

/** Kubernetes' rule: `command` replaces the entrypoint, `args` replaces the image's cmd. */
export function containerCommand(image: PulledImage['process'], container: ContainerTemplate): string[] {
  const entrypoint = container.command.length > 0 ? container.command : image.entrypoint;
  const args = container.args.length > 0 ? container.args : container.command.length > 0 ? [] : image.cmd;
  return [...entrypoint, ...args];
}

export class ContainerInstance {
  private ended: EndState | undefined;
  private readonly endListeners: ((state: EndState) => void)[] = [];
  private timers: NodeJS.Timeout[] = [];
  private livenessFailures = 0;

  private constructor(
    readonly sandbox: Sandbox,
    private readonly driver: SandboxDriver,
    private readonly archive: ConsoleLogArchive,
    readonly targetPort: number,
    /** Host unix socket that reaches the target port. */
    readonly upstreamSocket: string,
    private readonly liveness: Probe | undefined,
  ) {}

  /** Starts the container and returns once it listens on its target port and its startup probe passed. */
  static async start(
    driver: SandboxDriver,
    archive: ConsoleLogArchive,
    options: ContainerInstanceOptions,
  ): Promise<ContainerInstance> {
    const { container, image } = options;
    const command = containerCommand(image.process, container);
    if (command.length === 0) {
      throw new AppError(
        ErrorCode.SandboxStartFailed,
        `image ${container.image} names no command to run: set the container's command`,
      );
    }
    const label: ContainerLabel = { targetPort: container.targetPort, probes: container.probes };
    const sandbox = await driver.create({
      id: options.id,
      runtime: options.runtime,
      rootfs: image.rootfs,
      command,
      env: mergedEnv(image.process.env, options.env),
      cwd: image.process.cwd,
      resources: { ...options.resources, cpu: Math.max(options.resources.cpu, BOOT_CPU) },
      readOnlyBinds: [],
      labels: { [CONTAINER_LABEL]: JSON.stringify(label) },
      ...(options.egress && { egress: options.egress }),
    });
    try {
      await waitStarted(driver, sandbox, container);
      await driver.setCpuLimit(sandbox.id, options.resources.cpu);
      return await ContainerInstance.attach(driver, archive, sandbox);
    } catch (error) {
      await archive.keep(sandbox.id, sandbox.consoleLogPath).catch(() => undefined);
      await driver.destroy(sandbox.id).catch(() => undefined);
      throw error;
    }
  }

  /** Takes up a running container sandbox (after a restart too): bridges its port and watches it. */
  static async attach(
    driver: SandboxDriver,
    archive: ConsoleLogArchive,
    sandbox: Sandbox,
  ): Promise<ContainerInstance> {
    const label = JSON.parse(sandbox.labels[CONTAINER_LABEL] ?? '{}') as ContainerLabel;
    const socket = await driver.openPort(sandbox.id, label.targetPort);
    const liveness = label.probes.find((p) => p.type === 'Liveness');
    const session = new ContainerInstance(sandbox, driver, archive, label.targetPort, socket, liveness);
    session.watch();
    return session;
  }

  get id(): string {
    return this.sandbox.id;
  }

  get endState(): EndState | undefined {
    return this.ended;
  }

  onEnd(listener: (state: EndState) => void): void {
    this.endListeners.push(listener);
  }

  usage(): Promise<ResourceUsage | undefined> {
    return this.driver.usage(this.id);
  }

  /** Checks at once whether the container still runs (after the proxy found its port closed). */
  /** A host socket bridged to `port` on the sandbox's loopback (api/e2b's sandbox ports). */
  openPort(port: number): Promise<string> {
    return this.driver.openPort(this.sandbox.id, port);
  }

  async confirmRunning(): Promise<boolean> {
    await this.checkExit();
    return this.ended === undefined;
  }

  private watch(): void {
    // A check that fails for any reason (the sandbox going away under it, most often) is only a
    // missed check: the next one, or the end that is under way, settles it. None may reject unheard.
    const exits = setInterval(() => void this.checkExit().catch(() => undefined), EXIT_CHECK_MS);
    exits.unref();
    this.timers.push(exits);
    if (this.liveness) {
      const probe = this.liveness;
      const checks = setInterval(
        () => void this.checkLiveness(probe).catch(() => undefined),
        probe.periodSeconds * 1000,
      );
      checks.unref();
      this.timers.push(checks);
    }
  }

  private async checkExit(): Promise<void> {
    if (this.ended) return;
    const state = await this.driver.inspect(this.id).catch((): EndState => ({ status: 'unknown' }));
    if (state.status === 'running') return;
    // Whatever status it exits with, a custom container ending by itself is an exit, not a crash of ours.
    this.finish(
      state.status === 'exited' && state.cause === 'crashed' ? { ...state, cause: 'exited' } : state,
    );
  }

  private async checkLiveness(probe: Probe): Promise<void> {
    if (this.ended) return;
    const result = await runProbe(this.driver, this.id, probe);
    if (result.ok) {
      this.livenessFailures = 0;
      return;
    }
    this.livenessFailures++;
    if (this.livenessFailures >= probe.failureThreshold) {
      this.finish({
        status: 'unhealthy',
        message: `liveness probe failed ${this.livenessFailures} times in a row: ${result.message}`,
      });
    }
  }

  private finish(state: EndState): void {
    if (this.ended) return;
    this.ended = state;
    this.stopWatching();
    for (const listener of this.endListeners.splice(0)) listener(state);
  }

  private stopWatching(): void {
    for (const timer of this.timers.splice(0)) clearInterval(timer);
  }

  release(): void {
    this.endListeners.length = 0;
    this.stopWatching();
  }

  async destroy(): Promise<void> {
    this.release();
    await this.archive.keep(this.id, this.sandbox.consoleLogPath);
    await this.driver.destroy(this.id);
  }
}

/**
 * Waits until the container listens on its target port, then until its startup probe (if any)
 * passes, within the probe's budget (initial delay + period × failure threshold) or a minute.
 */
async function waitStarted(
  driver: SandboxDriver,
  sandbox: Sandbox,
  container: ContainerTemplate,
): Promise<void> {
  const startup = container.probes.find((p) => p.type === 'Startup');
  const started = Date.now();
  const budgetMs = startup
    ? (startup.initialDelaySeconds + startup.periodSeconds * startup.failureThreshold) * 1000
    : DEFAULT_STARTUP_SECONDS * 1000;
  // The reason only: the container's output is its code's, for those who may read its console
  // (the pool's start failures on the data plane), never the pool's status, events or logs.
  const fail = (why: string) =>
    new AppError(ErrorCode.SandboxStartFailed, `container ${container.name} ${why}`);
  const exited = async () => {
    const state = await driver.inspect(sandbox.id).catch(() => ({ status: 'unknown' as const }));
    if (state.status === 'running') return undefined;
    return state.status === 'exited'
      ? `exited with code ${String(state.exitCode)}${state.signal ? ` (${state.signal})` : ''} before it was ready`
      : 'ended before it was ready';
  };
  while (!(await driver.isListening(sandbox.id, container.targetPort))) {
    const exit = await exited();
    if (exit) throw fail(exit);
    if (Date.now() - started > budgetMs) {
      throw fail(`did not listen on port ${container.targetPort} within ${Math.round(budgetMs / 1000)} s`);
    }
    await sleep(PORT_POLL_MS);
  }
  if (!startup) return;
  const firstCheckAt = started + startup.initialDelaySeconds * 1000;
  if (Date.now() < firstCheckAt) await sleep(firstCheckAt - Date.now());
  for (let failures = 0; ;) {
    const result = await runProbe(driver, sandbox.id, startup);
    if (result.ok) return;
    failures++;
    const exit = await exited();
    if (exit) throw fail(exit);
    if (failures >= startup.failureThreshold) {
      throw fail(`failed its startup probe ${failures} times: ${result.message}`);
    }
    await sleep(startup.periodSeconds * 1000);
  }
}
