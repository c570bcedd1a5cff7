/**
 * An in-memory {@link InstanceLauncher} for unit tests of the pool layer: sandboxes start at once (or
 * fail, when told to), run "code" by calling a test-supplied function, and can be made to die.
 */

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { AppError, ErrorCode } from '../src/errors.js';
import type { AgentRequest, AgentResult } from '../src/interpreter/agent-client.js';
import type { EnvdClient } from '../src/interpreter/envd-client.js';
import type { ContextReply, ProcessReply } from '../src/interpreter/protocol.js';
import type { ImageSource } from '../src/pool/container-image.js';
import type { EndState, InstanceLauncher, Instance, Upstream } from '../src/pool/instance.js';
import type { PoolSpec } from '../src/pool/pool-spec.js';
import type { ResourceUsage, SandboxesMemory } from '../src/sandbox/driver.js';
import type { PulledImage, PullStage } from '../src/sandbox/image/image-puller.js';

export class FakeInstance implements Instance {
  readonly dataDir: string;
  readonly dataOwner = { uid: process.getuid!(), gid: process.getgid!() };
  readonly consoleLogPath: string;
  upstream: Upstream | undefined;
  destroyed = false;
  endState: EndState | undefined;
  running = 0;
  maxRunning = 0;
  private readonly listeners: ((state: EndState) => void)[] = [];

  constructor(
    readonly id: string,
    readonly spec: PoolSpec,
    private readonly run: (code: string) => Promise<string>,
    private readonly answer: (code: string) => Partial<AgentResult>,
  ) {
    this.dataDir = mkdtempSync(join(tmpdir(), `sandpool-fake-${id}-`));
    this.consoleLogPath = join(this.dataDir, 'console.log');
  }

  async execute(options: AgentRequest): Promise<AgentResult> {
    this.running++;
    this.maxRunning = Math.max(this.maxRunning, this.running);
    try {
      const stdout = await this.run(options.code);
      return {
        id: 1,
        ok: true,
        status: 'succeeded',
        interrupted: false,
        stdout,
        stderr: '',
        stdoutTruncated: false,
        stderrTruncated: false,
        result: null,
        images: [],
        error: null,
        durationMs: 0,
        timedOut: false,
        ...this.answer(options.code),
      };
    } finally {
      this.running--;
    }
  }

  /** The fake runs no processes; the real agent's are tested end to end (processes.test.ts). */
  processes(): Promise<ProcessReply> {
    return Promise.reject(new AppError(ErrorCode.InvalidAgentRequest, 'the fake instance runs no processes'));
  }

  /** The fake has no contexts; E2B's code interpreter is tested against real sandboxes (e2b-sdk.test.ts). */
  contexts(): Promise<ContextReply> {
    return Promise.reject(new AppError(ErrorCode.InvalidAgentRequest, 'the fake instance has no contexts'));
  }

  /** The fake has no envd agent; E2B's services are tested against real sandboxes (e2b-sdk.test.ts). */
  envd(): Promise<EnvdClient> {
    return Promise.reject(
      new AppError(ErrorCode.InvalidAgentRequest, 'the fake instance runs no envd agent'),
    );
  }

  /** The fake runs no programs to listen; E2B's sandbox ports are tested against real sandboxes. */
  openPort(): Promise<string> {
    return Promise.reject(new AppError(ErrorCode.InvalidAgentRequest, 'the fake instance has no ports'));
  }

  /** Fixed numbers, so tests can see them travel into ended events. */
  usage(): Promise<ResourceUsage | undefined> {
    return Promise.resolve(this.destroyed ? undefined : FAKE_USAGE);
  }

  onEnd(listener: (state: EndState) => void): void {
    this.listeners.push(listener);
  }

  /** Simulates the sandbox ending by itself. */
  die(state: EndState): void {
    this.endState = state;
    for (const listener of this.listeners.splice(0)) listener(state);
  }

  /** The server let go of it (shutdown) without ending it. */
  released = false;

  release(): void {
    this.released = true;
    this.listeners.length = 0;
  }

  destroy(): Promise<void> {
    this.destroyed = true;
    this.listeners.length = 0;
    rmSync(this.dataDir, { recursive: true, force: true });
    return Promise.resolve();
  }
}

export const FAKE_USAGE: ResourceUsage = { cpuSeconds: 0.25, memoryBytes: 1 << 20, peakMemoryBytes: 2 << 20 };

export class FakeLauncher implements InstanceLauncher {
  readonly sandboxes = new Map<string, FakeInstance>();
  starts = 0;
  /** When set, starts reject with it. */
  failWith: Error | undefined;
  /** Resolves each start; tests replace it to hold starts back. */
  gate: () => Promise<void> = () => Promise.resolve();
  run: (code: string) => Promise<string> = (code) => Promise.resolve(code);
  /** Fields of the agent's reply to replace, as a hostile agent would (tests of the host's bounds). */
  answer: (code: string) => Partial<AgentResult> = () => ({});

  async start(id: string, spec: PoolSpec): Promise<Instance> {
    this.starts++;
    await this.gate();
    if (this.failWith) throw this.failWith;
    const sandbox = new FakeInstance(
      id,
      spec,
      (code) => this.run(code),
      (code) => this.answer(code),
    );
    this.sandboxes.set(id, sandbox);
    return sandbox;
  }

  attachAll(): Promise<Map<string, Instance | EndState>> {
    return Promise.resolve(new Map(this.live().map((sandbox) => [sandbox.id, sandbox])));
  }

  destroy(id: string): Promise<void> {
    return this.sandboxes.get(id)?.destroy() ?? Promise.resolve();
  }

  /** Fakes refuse no connections. */
  onEgressDenied(): void {
    // Nothing to hear.
  }

  /** What memory() answers; tests set it to stand for a host short of memory. */
  memoryReading: SandboxesMemory = { limitBytes: null, workingSetBytes: 0 };

  memory(): Promise<SandboxesMemory> {
    return Promise.resolve(this.memoryReading);
  }

  /** Fakes fork nothing. */
  preparedMemory(): Promise<number | undefined> {
    return Promise.resolve(undefined);
  }

  live(): FakeInstance[] {
    return [...this.sandboxes.values()].filter((s) => !s.destroyed);
  }
}

/** Images "pulled" from a table: a digest per reference, stages reported, failures on request. */
export class FakeImageSource implements ImageSource {
  readonly pulls: string[] = [];
  /** When set, pulls reject with it. */
  failWith: Error | undefined;
  /** Resolves each pull; tests replace it to hold pulls back. */
  gate: () => Promise<void> = () => Promise.resolve();

  constructor(private readonly digests: Record<string, string> = {}) {}

  async pull(
    reference: string,
    _credentials: unknown,
    onStage?: (stage: PullStage) => void,
  ): Promise<PulledImage> {
    this.pulls.push(reference);
    onStage?.('downloading');
    await this.gate();
    if (this.failWith) throw this.failWith;
    const digest = this.digests[reference] ?? `sha256:${'0'.repeat(64)}`;
    return {
      reference,
      digest,
      rootfs: '/fake/rootfs',
      process: { entrypoint: [], cmd: ['serve'], env: [], cwd: '/' },
    };
  }
}
