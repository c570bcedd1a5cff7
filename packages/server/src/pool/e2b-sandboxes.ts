/**
 * @module pool/e2b-sandboxes
 * E2B's sandboxes, as Sandpool has them: a template is a code-interpreter pool of the E2B resource
 * group (its id is the pool's name), a sandbox is a session of it (its id is the session's
 * identifier, so Azure's API reaches the same session), and a sandbox's timeout is its session's own
 * lifetime: E2B's default when the client names none, moved by `setTimeout`, never shortened by
 * `connect`. What E2B's create carries beyond that (metadata, envVars, who made it) is kept with the
 * session. The use cases behind E2B's control plane and the lookups its sandbox routes need.
 */

import { randomBytes } from 'node:crypto';

import { poolId } from '../arm-id.js';
import { newTokenSeed, type SandboxClaims } from '../auth/sandbox-tokens.js';
import { allows, rootOf, type Principal } from '../auth/roles.js';
import { AppError, ErrorCode } from '../errors.js';
import type { AgentResult } from '../interpreter/agent-client.js';
import type { ContextReply, ContextRequest, RichResult } from '../interpreter/protocol.js';
import type { SessionRow, Store } from '../store/store.js';
import type { Claimed, PoolManager, Session } from './pool-manager.js';
import type { PoolService } from './pool-service.js';
import { attributesOf, type SessionAttributes } from './session-attributes.js';

// A sandbox's own routes (api/e2b) speak to its envd agent and read its rich results: through here.
export {
  EnvdRefusal,
  type EnvdClient,
  type EnvdMessage,
  type EnvdStream,
} from '../interpreter/envd-client.js';
export type { RichResult } from '../interpreter/protocol.js';

/** E2B's sandbox ids: 20 of [a-z0-9], safe as a DNS label and without a `-`. */
const SANDBOX_ID = /^[a-z0-9]{20}$/;
const ID_ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789';
/** The context E2B's code runs in when it names none (the agent's own namespace). */
const DEFAULT_CONTEXT = 'default';
/** Each of a code run's streams streams this much at most (E2B's streams all; the agent keeps a bound). */
const MAX_RUN_OUTPUT_CHARS = 4_000_000;
/** How many sandbox → pool answers a node keeps: ids are never reused, so an answer stays true. */
const LOCATED_KEPT = 50_000;

export interface E2bSettings {
  subscription: string;
  resourceGroup: string;
  /** The lifetime of a sandbox whose create names none (E2B's is 300 s). */
  defaultTimeoutSeconds: number;
  /** The longest lifetime a sandbox may be given. */
  maxTimeoutSeconds: number;
}

/** A sandbox as E2B's API describes it. */
export interface E2bSandbox {
  sandboxId: string;
  templateId: string;
  startedAt: string;
  endAt: string;
  metadata: Record<string, string>;
  claims: SandboxClaims;
  /** The pool's session size; E2B counts whole vCPUs, so a quarter-core session shows 1. */
  cpuCount: number;
  memoryBytes: number;
  /** The node holding it. */
  node: string | null;
}

export function newSandboxId(): string {
  const bytes = randomBytes(20);
  return Array.from(bytes, (b) => ID_ALPHABET[b % ID_ALPHABET.length]).join('');
}

export const isSandboxId = (value: string) => SANDBOX_ID.test(value);

/**
 * The environment a sandbox's commands and code runs get: E2B's own variables (`E2B_SANDBOX`, its
 * id and template), then its create's envVars, then the call's own.
 */
export function sandboxEnvironment(
  row: SessionRow,
  call: Record<string, string> = {},
): Record<string, string> {
  const attributes = attributesOf(row.attributes);
  return {
    E2B_SANDBOX: 'true',
    ...(row.identifier !== null && { E2B_SANDBOX_ID: row.identifier }),
    ...(attributes?.e2b && { E2B_TEMPLATE_ID: attributes.e2b.templateId }),
    ...attributes?.env,
    ...call,
  };
}

export class E2bSandboxes {
  private readonly located = new Map<string, string>();

  constructor(
    private readonly deps: { pools: PoolService; store: Store; now: () => number; settings: E2bSettings },
  ) {}

  get settings(): E2bSettings {
    return this.deps.settings;
  }

  /** The pool id of a template. */
  templatePoolId(templateId: string): string {
    return poolId(this.deps.settings.subscription, this.deps.settings.resourceGroup, templateId);
  }

  /** The pool of a template; NotFound (in E2B's words) for one that is no template. */
  async template(templateId: string): Promise<PoolManager> {
    const manager = await this.deps.pools.known(this.templatePoolId(templateId));
    if (!manager || manager.containerType === 'CustomContainer') {
      throw new AppError(ErrorCode.ResourceNotFound, `template '${templateId}' not found`);
    }
    return manager;
  }

  /** The lifetime a create or a timeout asks for, in seconds, within the bounds. */
  timeoutOf(seconds: unknown, fallback = this.deps.settings.defaultTimeoutSeconds): number {
    if (seconds === undefined || seconds === null) return fallback;
    if (typeof seconds !== 'number' || !Number.isInteger(seconds) || seconds < 0) {
      throw new AppError(ErrorCode.InvalidParameter, 'timeout must be a whole number of seconds', {
        target: 'timeout',
      });
    }
    if (seconds > this.deps.settings.maxTimeoutSeconds) {
      throw new AppError(
        ErrorCode.InvalidParameter,
        `timeout may be at most ${String(this.deps.settings.maxTimeoutSeconds)} seconds`,
        { target: 'timeout' },
      );
    }
    return seconds;
  }

  /**
   * Gives a session just claimed for a new sandbox its lifetime and what the create carried; the
   * claims its tokens are made of.
   */
  async begin(
    manager: PoolManager,
    claimed: Claimed,
    request: {
      creator: Principal;
      timeoutSeconds: number;
      metadata: Record<string, string>;
      env: Record<string, string>;
    },
  ): Promise<E2bSandbox> {
    const { session } = claimed;
    const attributes: SessionAttributes = {
      metadata: request.metadata,
      env: request.env,
      creator: {
        id: request.creator.id,
        ...(request.creator.keyId !== undefined && { keyId: request.creator.keyId }),
        ...(request.creator.root !== undefined && { root: request.creator.root }),
      },
      e2b: { templateId: manager.name, tokenSeed: newTokenSeed() },
    };
    await manager.annotate(session, {
      deadline: this.deps.now() + request.timeoutSeconds * 1000,
      attributes,
    });
    this.remember(session.identifier, manager.id);
    return this.describe(manager, session.row)!;
  }

  /** Moves a sandbox's end to `seconds` from now; with `extendOnly`, only later (connect). */
  async setTimeout(
    manager: PoolManager,
    session: Session,
    seconds: number,
    extendOnly: boolean,
  ): Promise<void> {
    const deadline = this.deps.now() + seconds * 1000;
    const current = session.row.deadline === null ? undefined : Date.parse(session.row.deadline);
    if (extendOnly && current !== undefined && current >= deadline) return;
    await manager.annotate(session, { deadline });
  }

  /**
   * Runs code in one of the sandbox's contexts (the default one unless named), with its
   * environment and the call's, for as long as the sandbox has left to live; `signal` interrupts it.
   */
  runCode(
    manager: PoolManager,
    session: Session,
    run: {
      code: string;
      context: string | undefined;
      env: Record<string, string>;
      signal: AbortSignal;
      onOutput: (stream: 'stdout' | 'stderr', text: string) => void;
      onResult: (result: RichResult) => void;
    },
  ): Promise<AgentResult> {
    const deadline = session.row.deadline === null ? undefined : Date.parse(session.row.deadline);
    const left =
      deadline === undefined ? this.deps.settings.maxTimeoutSeconds * 1000 : deadline - this.deps.now();
    return manager.execute(session, {
      code: run.code,
      context: run.context ?? DEFAULT_CONTEXT,
      env: sandboxEnvironment(session.row, run.env),
      timeoutMs: Math.max(1_000, left),
      maxOutputChars: MAX_RUN_OUTPUT_CHARS,
      onOutput: run.onOutput,
      onResult: run.onResult,
      signal: run.signal,
    });
  }

  /**
   * Passes one request on to a program the sandbox runs, on `port` of its loopback, while the
   * session is kept in use: `forward` gets the host socket bridged to that port.
   */
  reachPort<T>(
    manager: PoolManager,
    session: Session,
    port: number,
    forward: (socketPath: string) => Promise<T>,
  ): Promise<T> {
    return manager.use(session, async () => forward(await session.instance.openPort(port)), {
      serialize: false,
    });
  }

  /** A request about the sandbox's contexts, while the session is kept in use. */
  contexts(manager: PoolManager, session: Session, request: ContextRequest): Promise<ContextReply> {
    return manager.use(session, () => session.instance.contexts(request), { serialize: false });
  }

  /**
   * Whether the principal sees the sandbox in E2B's API: the credential lineage that made it does,
   * and so do the pool's operators (Reader or Contributor on it); another Session Executor of the
   * same template does not, so students or tenants sharing a template never see each other's.
   */
  visibleTo(principal: Principal, sandbox: E2bSandbox): boolean {
    const { creator } = sandbox.claims;
    return (
      rootOf(principal) === (creator.root ?? creator.id) ||
      allows(principal, 'pools/read', sandbox.claims.poolId)
    );
  }

  /** The pool a sandbox is in, if it is a live session of a template. */
  async locate(sandboxId: string): Promise<PoolManager | undefined> {
    if (!isSandboxId(sandboxId)) return undefined;
    let pool = this.located.get(sandboxId);
    if (pool === undefined) {
      const templates = await this.templatePools();
      pool = (await this.deps.store.findLiveSession(sandboxId, templates))?.poolId;
      if (pool === undefined) return undefined;
      this.remember(sandboxId, pool);
    }
    return this.deps.pools.known(pool);
  }

  /** A sandbox as its session's row has it (the holder's or another node's); undefined if none lives. */
  async find(sandboxId: string): Promise<E2bSandbox | undefined> {
    const manager = await this.locate(sandboxId);
    if (!manager) return undefined;
    const local = manager.getSession(sandboxId);
    const row = local?.row ?? (await this.deps.store.findLiveSession(sandboxId, [manager.id]));
    return row && this.describe(manager, row);
  }

  /** Every live sandbox of every template, as the store has them (across the cluster). */
  async list(): Promise<E2bSandbox[]> {
    const found: E2bSandbox[] = [];
    for (const id of await this.templatePools()) {
      const manager = await this.deps.pools.known(id);
      if (!manager) continue;
      const held = new Map(manager.listSessions().map((session) => [session.identifier, session.row]));
      const rows = await this.deps.store.listSessions(id, ['allocated']);
      for (const row of rows) {
        const sandbox = this.describe(manager, held.get(row.identifier ?? '') ?? row);
        if (sandbox) found.push(sandbox);
      }
    }
    return found.sort((a, b) => a.startedAt.localeCompare(b.startedAt));
  }

  /** The sandbox a session is, if it was made through E2B's API. */
  describe(manager: PoolManager, row: SessionRow): E2bSandbox | undefined {
    const attributes = attributesOf(row.attributes);
    if (!attributes?.e2b || row.identifier === null) return undefined;
    const size = manager.sandboxSize;
    return {
      sandboxId: row.identifier,
      templateId: attributes.e2b.templateId,
      startedAt: row.allocatedAt ?? row.createdAt,
      endAt: row.deadline ?? new Date(this.deps.now()).toISOString(),
      metadata: attributes.metadata,
      claims: {
        sandboxId: row.identifier,
        poolId: manager.id,
        creator: attributes.creator,
        seed: attributes.e2b.tokenSeed,
      },
      cpuCount: Math.ceil(size.cpu),
      memoryBytes: size.memoryBytes,
      node: row.node,
    };
  }

  private async templatePools(): Promise<string[]> {
    const { subscription, resourceGroup } = this.deps.settings;
    return (await this.deps.pools.listPools({ subscription, resourceGroup })).map((pool) => pool.id);
  }

  private remember(sandboxId: string, pool: string): void {
    this.located.set(sandboxId, pool);
    if (this.located.size > LOCATED_KEPT) this.located.delete(this.located.keys().next().value!);
  }
}
