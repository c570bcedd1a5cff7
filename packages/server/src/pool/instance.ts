/**
 * @module pool/instance
 * What the pool sees of a sandbox and of whoever starts them: {@link Instance} (run code,
 * reach its port, read its use, hear its end) and {@link InstanceLauncher}. The host launcher backs
 * them with real sandboxes; unit tests with an in-memory fake.
 */

import type { AgentRequest, AgentResult } from '../interpreter/agent-client.js';
import type { EnvdClient } from '../interpreter/envd-client.js';
import type { ContextReply, ContextRequest, ProcessReply, ProcessRequest } from '../interpreter/protocol.js';
import type { DeniedConnection, ResourceUsage, SandboxesMemory } from '../sandbox/driver.js';
import type { SandboxEnd } from './interpreter-instance.js';
import type { SessionRow } from '../store/store.js';
import type { PoolSpec } from './pool-spec.js';

/** How a sandbox ended: as the driver saw it, or ended by Sandpool for failing its liveness probe. */
export type EndState = SandboxEnd | { status: 'unhealthy'; message: string };

/** How the session proxy reaches a custom container. */
export interface Upstream {
  /** Host unix socket bridged to the container's target port. */
  socketPath: string;
  targetPort: number;
  /** Checks at once whether the container still runs, after its port refused a connection. */
  confirmRunning(): Promise<boolean>;
}

export interface Instance {
  readonly id: string;
  /** Host path of the sandbox's `/mnt/data`. */
  readonly dataDir: string;
  readonly dataOwner: { uid: number; gid: number };
  /** Host path of the console log (custom containers; the interpreter's agent keeps its own output). */
  readonly consoleLogPath: string;
  /** Set for custom containers: where the session proxy sends requests. */
  readonly upstream: Upstream | undefined;
  execute(options: AgentRequest): Promise<AgentResult>;
  /** A request about the sandbox's background processes (code interpreters only). */
  processes(request: ProcessRequest): Promise<ProcessReply>;
  /** A request about the sandbox's contexts (E2B's code interpreter; Python code interpreters only). */
  contexts(request: ContextRequest): Promise<ContextReply>;
  /** The sandbox's envd agent, E2B's services inside it (code interpreters with the Python agent only). */
  envd(): Promise<EnvdClient>;
  /**
   * A host unix socket bridged to a TCP port on the sandbox's loopback, for the programs it runs
   * (E2B's sandbox ports); the bridge enters only the sandbox's network namespace, as its own user.
   */
  openPort(port: number): Promise<string>;
  /** CPU and memory used so far; undefined once the sandbox is gone. */
  usage(): Promise<ResourceUsage | undefined>;
  /** How the sandbox ended, once the host knows it has. */
  readonly endState: EndState | undefined;
  /** Called once if the sandbox ends by itself. */
  onEnd(listener: (state: EndState) => void): void;
  destroy(): Promise<void>;
  /** Lets go of the sandbox without ending it (server shutdown): it keeps running for the next start. */
  release(): void;
}

/** Why an instance starts: to wait in the warm set, or for a claim that waits on it. */
export type StartPurpose = 'warm' | 'claim';

export interface InstanceLauncher {
  start(id: string, spec: PoolSpec, purpose: StartPurpose): Promise<Instance>;
  /** Every sandbox on the host: reattached if it lives, else how it ended (after a server restart). */
  attachAll(): Promise<Map<string, Instance | EndState>>;
  destroy(id: string): Promise<void>;
  /** Hears each connection a sandbox with egress tried and the rules refused. */
  onEgressDenied(listener: (sandboxId: string, attempt: DeniedConnection) => void): void;
  /** What every sandbox on the host holds together, and their common limit. */
  memory(): Promise<SandboxesMemory>;
  /** Memory of the prepared interpreter the pool's sandboxes are forked from; undefined without one. */
  preparedMemory(spec: PoolSpec): Promise<number | undefined>;
}

/** An instance with the store's row for it: ready in the warm set, or claimed by a session. */
export interface HeldInstance {
  instance: Instance;
  row: SessionRow;
}
