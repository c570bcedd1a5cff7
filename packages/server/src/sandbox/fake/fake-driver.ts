/**
 * @module sandbox/fake/fake-driver
 * An in-memory {@link SandboxDriver} for unit tests of the layers above: it keeps the bookkeeping of a
 * real driver (ids, states, end causes) and starts nothing. It passes the same contract
 * suite as the OCI driver; tests end a sandbox with {@link FakeDriver.end} to play out failures.
 */

import { AppError, ErrorCode } from '../../errors.js';
import type {
  ExitCause,
  ResourceUsage,
  Sandbox,
  SandboxDriver,
  SandboxSpec,
  SandboxState,
} from '../driver.js';
import { SANDBOX_ID_PATTERN } from '../oci/oci-driver.js';

interface FakeSandbox {
  sandbox: Sandbox;
  state: SandboxState;
  listening: Set<number>;
}

export class FakeDriver implements SandboxDriver {
  private readonly sandboxes = new Map<string, FakeSandbox>();
  private nextPid = 1000;

  create(spec: SandboxSpec): Promise<Sandbox> {
    if (!SANDBOX_ID_PATTERN.test(spec.id)) {
      return Promise.reject(
        new AppError(ErrorCode.InvalidSandboxSpec, `sandbox id ${JSON.stringify(spec.id)} is invalid`),
      );
    }
    if (this.sandboxes.has(spec.id)) {
      return Promise.reject(
        new AppError(ErrorCode.SandboxAlreadyExists, `sandbox ${spec.id} already exists`),
      );
    }
    const sandbox: Sandbox = {
      id: spec.id,
      runtime: spec.runtime,
      agentSocketPath: `/fake/${spec.id}/agent/agent.sock`,
      dataDir: `/fake/${spec.id}/data`,
      dataOwner: { uid: 1000, gid: 1000 },
      consoleLogPath: `/fake/${spec.id}/console.log`,
      labels: spec.labels ?? {},
      createdAt: new Date(),
    };
    this.sandboxes.set(spec.id, {
      sandbox,
      state: { status: 'running', pid: this.nextPid++ },
      listening: new Set(),
    });
    return Promise.resolve(sandbox);
  }

  private get(id: string): FakeSandbox {
    const entry = this.sandboxes.get(id);
    if (!entry) throw new AppError(ErrorCode.SandboxNotFound, `sandbox ${id} does not exist`);
    return entry;
  }

  inspect(id: string): Promise<SandboxState> {
    return Promise.resolve().then(() => this.get(id).state);
  }

  /** A running fake has used nothing; an unknown or removed one has no usage to read. */
  usage(id: string): Promise<ResourceUsage | undefined> {
    const entry = this.sandboxes.get(id);
    return Promise.resolve(entry ? { cpuSeconds: 0, memoryBytes: 0, peakMemoryBytes: 0 } : undefined);
  }

  setCpuLimit(id: string): Promise<void> {
    return Promise.resolve().then(() => {
      if (this.get(id).state.status !== 'running') {
        throw new AppError(ErrorCode.SandboxNotFound, `sandbox ${id} is not running`);
      }
    });
  }

  signal(id: string, signal: 'SIGINT' | 'SIGKILL'): Promise<void> {
    const entry = this.sandboxes.get(id);
    if (entry?.state.status !== 'running') {
      return Promise.reject(new AppError(ErrorCode.SandboxNotFound, `sandbox ${id} is not running`));
    }
    if (signal === 'SIGKILL')
      entry.state = { status: 'exited', cause: 'killed', exitCode: 137, signal: 'SIGKILL' };
    return Promise.resolve();
  }

  /** The fake has no network to refuse anything. */
  onEgressDenied(): void {
    // Nothing to hear.
  }

  /** A path nothing listens on: the fake runs no process to bridge to. */
  openPort(id: string, port: number): Promise<string> {
    return Promise.resolve().then(() => {
      if (this.get(id).state.status !== 'running') {
        throw new AppError(ErrorCode.SandboxNotFound, `sandbox ${id} is not running`);
      }
      return `/fake/${id}/ports/${port}.sock`;
    });
  }

  isListening(id: string, port: number): Promise<boolean> {
    const entry = this.sandboxes.get(id);
    return Promise.resolve(entry?.state.status === 'running' && entry.listening.has(port));
  }

  /** Plays a process in the sandbox starting to listen on `port`. */
  listen(id: string, port: number): void {
    this.get(id).listening.add(port);
  }

  destroy(id: string): Promise<void> {
    this.sandboxes.delete(id);
    return Promise.resolve();
  }

  list(): Promise<Sandbox[]> {
    return Promise.resolve([...this.sandboxes.values()].map((e) => e.sandbox));
  }

  /** Ends a running sandbox the way a real one can end. */
  end(id: string, cause: ExitCause, exitCode: number, signal: string | null = null): void {
    this.get(id).state = { status: 'exited', cause, exitCode, signal };
  }
}
