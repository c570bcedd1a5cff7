/**
 * @module pool/launcher
 * How a pool gets sandboxes: start one from the pool's template, reattach one that outlived a server
 * restart, or remove one by id. The pool manager sees only {@link SessionSandbox}; the interpreter
 * launcher backs it with a real sandbox and its agent, and unit tests back it with an in-memory fake.
 */

import type { AgentClientOptions, ExecuteOptions, ExecutionOutcome } from '../interpreter/agent-client.js';
import type { ResourceUsage, SandboxDriver } from '../sandbox/driver.js';
import { InterpreterSandbox, type EndState, type PythonImage } from './interpreter-sandbox.js';
import type { PoolSpec } from './pool-spec.js';

export type { EndState } from './interpreter-sandbox.js';

export interface SessionSandbox {
  readonly id: string;
  /** Host path of the sandbox's `/mnt/data`. */
  readonly dataDir: string;
  readonly dataOwner: { uid: number; gid: number };
  execute(options: ExecuteOptions): Promise<ExecutionOutcome>;
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

export interface SandboxLauncher {
  start(id: string, spec: PoolSpec): Promise<SessionSandbox>;
  /** Every sandbox on the host: reattached if it lives, else how it ended (after a server restart). */
  attachAll(): Promise<Map<string, SessionSandbox | EndState>>;
  destroy(id: string): Promise<void>;
}

/** Code-interpreter sandboxes: the PythonLTS image with the agent in it. */
export class InterpreterLauncher implements SandboxLauncher {
  constructor(
    private readonly driver: SandboxDriver,
    private readonly image: PythonImage,
    private readonly agent: AgentClientOptions,
    /** Per-sandbox limits the pool spec does not set. */
    private readonly limits: { pids: number; dataBytes: number; tmpBytes: number },
  ) {}

  async start(id: string, spec: PoolSpec): Promise<SessionSandbox> {
    const session = await InterpreterSandbox.start(this.driver, {
      id,
      runtime: spec.runtime,
      image: this.image,
      resources: { cpu: spec.cpu, memoryBytes: spec.memoryBytes, ...this.limits },
      agent: this.agent,
    });
    return adapt(session);
  }

  async attachAll(): Promise<Map<string, SessionSandbox | EndState>> {
    const found = new Map<string, SessionSandbox | EndState>();
    await Promise.all(
      (await this.driver.list()).map(async (sandbox) => {
        const state = await this.driver.inspect(sandbox.id);
        if (state.status !== 'running') {
          found.set(sandbox.id, state);
          return;
        }
        try {
          found.set(sandbox.id, adapt(await InterpreterSandbox.attach(this.driver, sandbox, this.agent)));
        } catch {
          // Running, but its agent does not answer: as good as lost.
          found.set(sandbox.id, { status: 'unknown' });
        }
      }),
    );
    return found;
  }

  destroy(id: string): Promise<void> {
    return this.driver.destroy(id);
  }
}

function adapt(session: InterpreterSandbox): SessionSandbox {
  return {
    id: session.id,
    dataDir: session.sandbox.dataDir,
    dataOwner: session.sandbox.dataOwner,
    get endState() {
      return session.endState;
    },
    execute: (options) => session.execute(options),
    usage: () => session.usage(),
    onEnd: (listener) => session.onEnd(listener),
    destroy: () => session.destroy(),
    release: () => session.release(),
  };
}
