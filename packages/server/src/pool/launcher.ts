/**
 * @module pool/launcher
 * How a pool gets sandboxes on this host: start one from the pool's template, reattach one that
 * outlived a server restart, or remove one by id. The pool manager sees only the interface in
 * pool/instance; this launcher backs it with a real sandbox and its agent or container.
 */

import { AppError, ErrorCode } from '../errors.js';
import type { AgentClientOptions } from '../interpreter/agent-client.js';
import type {
  DeniedConnection,
  Sandbox,
  SandboxDriver,
  SandboxesMemory,
  SandboxResources,
} from '../sandbox/driver.js';
import type { ConsoleLogArchive } from './console-log.js';
import { pinnedReference, registryCredentials, type ImageSource } from './container-image.js';
import { CONTAINER_LABEL, ContainerInstance } from './container-instance.js';
import { InterpreterInstance, isForked, type InterpreterImage } from './interpreter-instance.js';
import { preloadModules, type PoolSpec } from './pool-spec.js';
import type { EndState, InstanceLauncher, Instance, StartPurpose } from './instance.js';

export interface HostLauncherOptions {
  /** The code interpreter's image and how to talk to its agent. */
  interpreter: {
    /** PythonLTS and Shell pools' image. */
    image: InterpreterImage;
    /** NodeLTS pools' image. */
    nodeImage: InterpreterImage;
    agent: AgentClientOptions;
    /** Fork interpreter sandboxes from a zygote where they can be (see InterpreterInstanceOptions.fork). */
    fork: boolean;
  };
  /** Custom container images, and where their sessions' console logs are kept. */
  containers: { images: ImageSource; logs: ConsoleLogArchive };
  /** Per-sandbox limits the pool spec does not set. */
  limits: Omit<SandboxResources, 'cpu' | 'memoryBytes'>;
}

/**
 * A session's limits. `/mnt/data` and `/tmp` are tmpfs, whose pages are charged to the sandbox's
 * memory: a data cap above the memory limit would let a disk fill end in the OOM killer instead of
 * ENOSPC. Each takes at most a share of memory (data half, tmp a quarter), leaving the rest for
 * the code itself.
 */
export function sessionResources(
  spec: Pick<PoolSpec, 'cpu' | 'memoryBytes'>,
  limits: HostLauncherOptions['limits'],
): SandboxResources {
  return {
    ...limits,
    cpu: spec.cpu,
    memoryBytes: spec.memoryBytes,
    dataBytes: Math.min(limits.dataBytes, Math.floor(spec.memoryBytes / 2)),
    tmpBytes: Math.min(limits.tmpBytes, Math.floor(spec.memoryBytes / 4)),
  };
}

/** How long a reattached agent may take to answer (it is normally listening already). */
const REATTACH_WAIT_MS = 5_000;

/**
 * Sandboxes on this host: code interpreters (the PythonLTS and NodeLTS images and their agents) and
 * custom containers.
 */
export class HostLauncher implements InstanceLauncher {
  constructor(
    private readonly driver: SandboxDriver,
    private readonly options: HostLauncherOptions,
  ) {}

  async start(id: string, spec: PoolSpec, purpose: StartPurpose): Promise<Instance> {
    const resources = sessionResources(spec, this.options.limits);
    const egress =
      spec.egress === 'EgressEnabled'
        ? {
            egress: {
              allow: spec.egressAllow,
              ...(spec.egressDnsServer !== undefined && { dnsServer: spec.egressDnsServer }),
            },
          }
        : {};
    if (!spec.container) {
      const interpreter = await InterpreterInstance.start(this.driver, {
        id,
        runtime: spec.runtime,
        image:
          spec.containerType === 'NodeLTS'
            ? this.options.interpreter.nodeImage
            : this.options.interpreter.image,
        resources,
        agent: this.options.interpreter.agent,
        preload: spec.preload,
        fork: this.options.interpreter.fork,
        warmUp: purpose === 'warm',
        ...egress,
      });
      return fromInterpreter(interpreter);
    }
    const { container } = spec;
    // The pool pinned the digest at create/update: this finds it in the cache (or fetches that digest again).
    const image = await this.options.containers.images.pull(
      pinnedReference(container),
      registryCredentials(spec),
    );
    const env: Record<string, string> = {};
    for (const variable of container.env) {
      env[variable.name] =
        variable.secretRef === undefined
          ? (variable.value ?? '')
          : (spec.secrets.find((s) => s.name === variable.secretRef)?.value ?? '');
    }
    const started = await ContainerInstance.start(this.driver, this.options.containers.logs, {
      id,
      runtime: spec.runtime,
      image,
      container,
      env,
      resources,
      ...egress,
    });
    return fromContainer(started);
  }

  onEgressDenied(listener: (sandboxId: string, attempt: DeniedConnection) => void): void {
    this.driver.onEgressDenied(listener);
  }

  async attachAll(): Promise<Map<string, Instance | EndState>> {
    const found = new Map<string, Instance | EndState>();
    await Promise.all(
      (await this.driver.list()).map(async (sandbox) => {
        // A create that died before writing its record leaves a directory the driver lists but
        // cannot inspect: it never ran, and reporting it ended lets the caller remove what is left.
        const state = await this.driver.inspect(sandbox.id).catch((error: unknown): EndState => {
          if (error instanceof AppError && error.code === ErrorCode.SandboxNotFound)
            return { status: 'unknown' };
          throw error;
        });
        if (state.status !== 'running') {
          found.set(sandbox.id, state);
          return;
        }
        try {
          found.set(sandbox.id, await this.attach(sandbox));
        } catch {
          // Running, but neither its agent nor its port answers: as good as lost.
          found.set(sandbox.id, { status: 'unknown' });
        }
      }),
    );
    return found;
  }

  private async attach(sandbox: Sandbox): Promise<Instance> {
    if (sandbox.labels[CONTAINER_LABEL] !== undefined) {
      return fromContainer(
        await ContainerInstance.attach(this.driver, this.options.containers.logs, sandbox),
      );
    }
    // An agent that is not listening by now was starting when its server died, and nobody will
    // finish that start: a short wait tells the two apart without holding up the server's start.
    const { agent } = this.options.interpreter;
    return fromInterpreter(
      await InterpreterInstance.attach(this.driver, sandbox, {
        ...agent,
        connectTimeoutMs: Math.min(agent.connectTimeoutMs, REATTACH_WAIT_MS),
      }),
    );
  }

  memory(): Promise<SandboxesMemory> {
    return this.driver.memory();
  }

  async preparedMemory(spec: PoolSpec): Promise<number | undefined> {
    const forked =
      !spec.container &&
      isForked({
        fork: this.options.interpreter.fork,
        agent: spec.containerType === 'NodeLTS' ? 'node' : 'python',
        runtime: spec.runtime,
        egress: spec.egress === 'EgressEnabled',
      });
    if (!forked) return undefined;
    return this.driver.preparedMemory(
      this.options.interpreter.image.rootfs,
      preloadModules(spec.preload, forked),
    );
  }

  destroy(id: string): Promise<void> {
    return this.driver.destroy(id);
  }
}

/** The pool's view of an instance of either kind; `parts` are what the two kinds do differently. */
function asInstance(
  kind: InterpreterInstance | ContainerInstance,
  parts: Pick<Instance, 'upstream' | 'execute' | 'processes' | 'contexts' | 'envd'>,
): Instance {
  return {
    id: kind.id,
    dataDir: kind.sandbox.dataDir,
    dataOwner: kind.sandbox.dataOwner,
    consoleLogPath: kind.sandbox.consoleLogPath,
    ...parts,
    get endState() {
      return kind.endState;
    },
    usage: () => kind.usage(),
    openPort: (port) => kind.openPort(port),
    onEnd: (listener) => kind.onEnd(listener),
    destroy: () => kind.destroy(),
    release: () => kind.release(),
  };
}

function fromInterpreter(interpreter: InterpreterInstance): Instance {
  return asInstance(interpreter, {
    upstream: undefined,
    execute: (options) => interpreter.execute(options),
    processes: (request) => interpreter.processes(request),
    contexts: (request) => interpreter.contexts(request),
    envd: () => interpreter.envd(),
  });
}

function fromContainer(container: ContainerInstance): Instance {
  return asInstance(container, {
    upstream: {
      socketPath: container.upstreamSocket,
      targetPort: container.targetPort,
      confirmRunning: () => container.confirmRunning(),
    },
    execute: noInterpreter,
    processes: noInterpreter,
    contexts: noInterpreter,
    envd: noInterpreter,
  });
}

function noInterpreter(): Promise<never> {
  return Promise.reject(
    new AppError(ErrorCode.InvalidParameter, 'a custom container session has no code interpreter'),
  );
}
