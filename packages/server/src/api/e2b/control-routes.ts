/**
 * @module api/e2b/control-routes
 * E2B's control plane, in both path generations its SDKs use (`/sandboxes…` and `/v2/sandboxes…`):
 * create, list, get, kill, set timeout, connect, metrics; pause and resume answer 501 until sessions
 * can sleep. A create takes the template's pool's role (Session Executor) and claims a session for a
 * new sandbox id through the request path, as any new identifier does; a sandbox's own operations are
 * served by the node that holds it. Parse and render here; the use cases are pool/e2b-sandboxes'.
 */

import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

import { allows, authorize, type Action } from '../../auth/roles.js';
import type { SandboxTokens } from '../../auth/sandbox-tokens.js';
import { AppError, ErrorCode } from '../../errors.js';
import type { E2bSandbox, E2bSandboxes } from '../../pool/e2b-sandboxes.js';
import { newSandboxId } from '../../pool/e2b-sandboxes.js';
import type { PoolManager, Session } from '../../pool/pool-manager.js';
import type { SessionSamples } from '../../pool/session-samples.js';
import type { SessionSteps } from '../request-path.js';
import { e2bRoutes } from '../schemas/e2b.js';
import { field, isRecord } from '../wire.js';
import type { SandboxConnections } from './sandbox-connections.js';

/** The envd version Sandpool answers as: the newest whose behaviour it serves (no file metadata). */
export const ENVD_VERSION = '0.5.7';
const CLIENT_ID = 'sandpool';
const PAGE_SIZE = 100;

export interface ControlRoutesDeps {
  sandboxes: E2bSandboxes;
  tokens: SandboxTokens;
  sessions: SessionSteps;
  samples: SessionSamples;
  connections: SandboxConnections;
  /** The domain E2B's SDKs build sandbox host names from (`{port}-{id}.{domain}`); null: none. */
  domain: string | null;
}

function stringRecord(value: unknown, name: string): Record<string, string> {
  if (value === undefined || value === null) return {};
  if (!isRecord(value) || !Object.values(value).every((v) => typeof v === 'string')) {
    throw new AppError(ErrorCode.InvalidParameter, `${name} must map names to strings`, { target: name });
  }
  return value as Record<string, string>;
}

const mib = (bytes: number) => Math.round(bytes / 1024 ** 2);

function decoded(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

export function registerE2bControlRoutes(app: FastifyInstance, deps: ControlRoutesDeps): void {
  const { sandboxes } = deps;

  const created = (sandbox: E2bSandbox) => ({
    sandboxID: sandbox.sandboxId,
    templateID: sandbox.templateId,
    clientID: CLIENT_ID,
    envdVersion: ENVD_VERSION,
    envdAccessToken: deps.tokens.accessToken(sandbox.claims),
    trafficAccessToken: deps.tokens.trafficToken(sandbox.claims),
    domain: deps.domain,
  });

  const listed = (sandbox: E2bSandbox) => ({
    sandboxID: sandbox.sandboxId,
    templateID: sandbox.templateId,
    clientID: CLIENT_ID,
    startedAt: sandbox.startedAt,
    endAt: sandbox.endAt,
    state: 'running' as const,
    cpuCount: sandbox.cpuCount,
    memoryMB: mib(sandbox.memoryBytes),
    diskSizeMB: mib(sandbox.memoryBytes / 2),
    envdVersion: ENVD_VERSION,
    metadata: sandbox.metadata,
  });

  /**
   * The sandbox a request names, once the caller may `action` on its pool, where it is held; undefined
   * once the request went to the node that holds it. A sandbox that does not run is E2B's 404.
   */
  async function heldSandbox(
    request: FastifyRequest,
    reply: FastifyReply,
    action: Action,
  ): Promise<{ manager: PoolManager; session: Session; sandbox: E2bSandbox } | undefined> {
    const { sandboxID } = request.params as { sandboxID: string };
    const missing = () => new AppError(ErrorCode.SandboxNotFound, `sandbox ${sandboxID} not found`);
    const described = await sandboxes.find(sandboxID);
    // Another's sandbox is as good as missing: its id says nothing about whether it exists.
    if (!described || !sandboxes.visibleTo(request.principal, described)) throw missing();
    const manager = (await sandboxes.locate(sandboxID))!;
    authorize(request.principal, action, manager.id);
    const found = await deps.sessions.find(request, reply, { manager, identifier: sandboxID });
    if (!found) return undefined;
    const session = found.claimed?.session;
    const sandbox = session && sandboxes.describe(manager, session.row);
    if (!session || !sandbox) throw missing();
    return { manager, session, sandbox };
  }

  async function create(request: FastifyRequest, reply: FastifyReply) {
    const body = isRecord(request.body) ? request.body : {};
    const templateId = field(body, 'templateID');
    if (typeof templateId !== 'string' || templateId === '') {
      throw new AppError(ErrorCode.InvalidParameter, 'templateID is required', { target: 'templateID' });
    }
    const timeoutSeconds = sandboxes.timeoutOf(field(body, 'timeout'));
    const metadata = stringRecord(field(body, 'metadata'), 'metadata');
    const env = stringRecord(field(body, 'envVars'), 'envVars');
    for (const unsupported of ['autoPause', 'autoResume', 'volumeMounts', 'mcp', 'network']) {
      const value = field(body, unsupported);
      if (value !== undefined && value !== null && value !== false) {
        throw new AppError(ErrorCode.NotSupported, `${unsupported} is not supported by Sandpool yet`, {
          target: unsupported,
        });
      }
    }
    const manager = await sandboxes.template(templateId);
    authorize(request.principal, 'sessions/execute', manager.id);
    // SDKs before 2.51 send `true` on every create, so only a request for less than the template
    // gives is refused; the sandbox's details report what it has.
    if (field(body, 'allow_internet_access') === false && manager.egress) {
      throw new AppError(
        ErrorCode.InvalidParameter,
        `template ${templateId} reaches the internet; its pool’s egress decides, not the sandbox: use a template without egress`,
        { target: 'allow_internet_access' },
      );
    }
    // A create another node placed here keeps the id that node chose.
    const sandboxId = request.forwarded?.placed?.identifier ?? newSandboxId();
    const claimed = await deps.sessions.claim(request, reply, { manager, identifier: sandboxId });
    if (!claimed) return reply;
    const sandbox = await sandboxes.begin(manager, claimed, {
      creator: request.principal,
      timeoutSeconds,
      metadata,
      env,
    });
    deps.samples.watch(claimed.session);
    return reply.status(201).send(created(sandbox));
  }

  async function list(request: FastifyRequest) {
    const query = request.query as Record<string, string | undefined>;
    // E2B's SDKs encode each key and value before they encode the pairs: both are decoded again.
    const wanted = [...new URLSearchParams(query.metadata ?? '')].map(([key, value]) => [
      decoded(key),
      decoded(value),
    ]);
    const states = (query.state ?? 'running,paused').split(',');
    const limit = Math.min(Number(query.limit ?? PAGE_SIZE) || PAGE_SIZE, 1000);
    const after = query.nextToken ?? '';
    const startedAfter = query.startedAfter === undefined ? undefined : Date.parse(query.startedAfter);
    if (startedAfter !== undefined && Number.isNaN(startedAfter)) {
      throw new AppError(ErrorCode.InvalidParameter, 'startedAfter must be an RFC 3339 time', {
        target: 'startedAfter',
      });
    }
    const all = (await sandboxes.list()).filter(
      (sandbox) =>
        allows(request.principal, 'sessions/read', sandbox.claims.poolId) &&
        sandboxes.visibleTo(request.principal, sandbox) &&
        states.includes('running') &&
        (query.template === undefined || sandbox.templateId === query.template) &&
        (startedAfter === undefined || Date.parse(sandbox.startedAt) > startedAfter) &&
        wanted.every(([key, value]) => sandbox.metadata[key!] === value),
    );
    if (query.order === 'desc') all.reverse();
    const start = after === '' ? 0 : all.findIndex((sandbox) => sandbox.sandboxId === after) + 1;
    const page = all.slice(start, start + limit);
    return { page: page.map(listed), next: start + limit < all.length ? page.at(-1)?.sandboxId : undefined };
  }

  for (const [version, prefix] of [
    ['v1', '/sandboxes'],
    ['v2', '/v2/sandboxes'],
  ] as const) {
    app.post(prefix, e2bRoutes.create(version), create);
    app.get(prefix, e2bRoutes.list(version), async (request, reply) => {
      const { page, next } = await list(request);
      if (next !== undefined) void reply.header('x-next-token', next);
      return page;
    });
    app.post(`${prefix}/:sandboxID/connect`, e2bRoutes.connect(version), async (request, reply) => {
      const held = await heldSandbox(request, reply, 'sessions/execute');
      if (!held) return reply;
      const timeout = isRecord(request.body) ? field(request.body, 'timeout') : undefined;
      if (timeout !== undefined) {
        await sandboxes.setTimeout(held.manager, held.session, sandboxes.timeoutOf(timeout), true);
      }
      return created(held.sandbox);
    });
  }

  app.get('/sandboxes/:sandboxID', e2bRoutes.get, async (request, reply) => {
    const held = await heldSandbox(request, reply, 'sessions/read');
    if (!held) return reply;
    const { sandbox, manager } = held;
    return {
      ...listed(sandbox),
      envdAccessToken: deps.tokens.accessToken(sandbox.claims),
      domain: deps.domain,
      allowInternetAccess: manager.egress,
    };
  });

  app.delete('/sandboxes/:sandboxID', e2bRoutes.kill, async (request, reply) => {
    const held = await heldSandbox(request, reply, 'sessions/stop');
    if (!held) return reply;
    await held.manager.stop(held.sandbox.sandboxId);
    // Open streams end as a reset, never as a clean end a client would read as success.
    deps.connections.reset(held.manager.id, held.sandbox.sandboxId);
    return reply.status(204).send();
  });

  app.post('/sandboxes/:sandboxID/timeout', e2bRoutes.timeout, async (request, reply) => {
    const timeout = isRecord(request.body) ? field(request.body, 'timeout') : undefined;
    const seconds = sandboxes.timeoutOf(timeout, -1);
    if (seconds < 0)
      throw new AppError(ErrorCode.InvalidParameter, 'timeout is required', { target: 'timeout' });
    const held = await heldSandbox(request, reply, 'sessions/execute');
    if (!held) return reply;
    await sandboxes.setTimeout(held.manager, held.session, seconds, false);
    return reply.status(204).send();
  });

  app.get('/sandboxes/:sandboxID/metrics', e2bRoutes.metrics, async (request, reply) => {
    const held = await heldSandbox(request, reply, 'sessions/read');
    if (!held) return reply;
    const query = request.query as Record<string, string | undefined>;
    const bound = (value: string | undefined, name: string) => {
      if (value === undefined) return undefined;
      if (!/^\d{1,12}$/.test(value)) {
        throw new AppError(ErrorCode.InvalidParameter, `${name} must be unix seconds`, { target: name });
      }
      return Number(value) * 1000;
    };
    const { cpuCount, memoryBytes } = held.sandbox;
    return deps.samples
      .of(held.session, bound(query.start, 'start'), bound(query.end, 'end'))
      .map((sample) => ({
        timestamp: new Date(sample.at).toISOString(),
        timestampUnix: Math.floor(sample.at / 1000),
        cpuCount,
        cpuUsedPct: sample.cpuUsedPct,
        memUsed: sample.memoryBytes,
        memTotal: memoryBytes,
        memCache: 0,
        diskUsed: sample.dataBytes,
        diskTotal: Math.round(memoryBytes / 2),
      }));
  });

  for (const [action, doc] of [
    ['pause', e2bRoutes.pause],
    ['resume', e2bRoutes.resume],
  ] as const) {
    app.post(`/sandboxes/:sandboxID/${action}`, doc, () => {
      throw new AppError(
        ErrorCode.NotSupported,
        `${action} is not supported by Sandpool yet: its sessions cannot sleep until they can`,
      );
    });
  }
}
