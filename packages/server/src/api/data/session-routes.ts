/**
 * @module api/data/session-routes
 * The session itself (`GET` / `DELETE session`), every session of the pool (`listSessions`) and the
 * pool's runtime (`metadata`).
 */

import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

import { AppError, ErrorCode } from '../../errors.js';
import type { PoolManager, Session } from '../../pool/pool-manager.js';
import type { SessionRow } from '../../store/store.js';
import { readConsoleTail, type ConsoleLine, type ConsoleLogArchive } from '../../pool/console-log.js';
import type { PoolService } from '../../pool/pool-service.js';
import { optionalInteger } from '../wire.js';
import { dataRoutes } from '../schemas/data.js';
import type { SessionSteps } from '../request-path.js';
import { POOL_ENDPOINT, poolFor, requireIdentifier, type Query } from './pool-endpoint.js';
import type { InterpreterType } from '../../pool/pool-spec.js';

const PAGE_SIZE = 100;
/** A failed start's console excerpt: its last lines, within a character budget. */
const START_FAILURE_LINES = 20;
const START_FAILURE_CHARS = 4096;

/** The last of `lines` that fit the excerpt's budget together (the newest matter most). */
function boundedExcerpt(lines: string[]): string[] {
  const kept: string[] = [];
  let budget = START_FAILURE_CHARS;
  for (const line of [...lines].reverse()) {
    const text = line.slice(0, budget);
    if (text.length === 0) break;
    kept.unshift(text);
    budget -= text.length;
  }
  return kept;
}

export interface ImageMetadata {
  runtimes: { name: string; version: string }[];
  preInstalledPackages: { name: string; version: string }[];
}

/** The session as Azure describes it, plus what it has run and uses now (read from its cgroup). */
async function sessionResource(manager: PoolManager, session: Session) {
  const usage = await session.instance.usage().catch(() => undefined);
  return {
    identifier: session.identifier,
    createdAt: new Date(session.allocatedAt).toISOString(),
    lastAccessedAt: new Date(session.lastAccessedAt).toISOString(),
    expireAt: new Date(manager.expiresAt(session)).toISOString(),
    etag: session.id,
    executions: session.executions,
    node: manager.node,
    ...(usage && { usage }),
  };
}

/** A session another node holds, as the store has it (its use and executions are that node's to tell). */
function storedSessionResource({ row, expiresAt }: { row: SessionRow; expiresAt: number }) {
  return {
    identifier: row.identifier!,
    createdAt: row.allocatedAt ?? row.createdAt,
    lastAccessedAt: row.lastAccessedAt ?? row.allocatedAt ?? row.createdAt,
    expireAt: new Date(expiresAt).toISOString(),
    etag: row.id,
    node: row.node!,
  };
}

export function registerSessionRoutes(
  app: FastifyInstance,
  deps: {
    pools: PoolService;
    sessions: SessionSteps;
    publicUrl: () => string;
    imageMetadata: (type: InterpreterType) => Promise<ImageMetadata>;
    consoleLogs: ConsoleLogArchive;
  },
): void {
  /** The identifier's live session where the request is served; undefined once it was forwarded. */
  async function liveSession(
    request: FastifyRequest,
    reply: FastifyReply,
    options: { versionOptional?: boolean } = {},
  ) {
    const { manager, query } = await poolFor(deps.pools, request, options);
    const identifier = requireIdentifier(query.identifier);
    const found = await deps.sessions.find(request, reply, { manager, identifier });
    return found && { manager, query, identifier, session: found.claimed?.session };
  }

  const notFound = (identifier: string) =>
    new AppError(
      ErrorCode.SessionNotFound,
      `No live session has the identifier ${JSON.stringify(identifier)}.`,
    );

  app.get(`${POOL_ENDPOINT}/session`, dataRoutes.getSession, async (request, reply) => {
    const live = await liveSession(request, reply);
    if (!live) return reply;
    if (!live.session) throw notFound(live.identifier);
    return sessionResource(live.manager, live.session);
  });

  // Ending a session frees its slot at once; ending one that does not exist is not an error.
  app.delete(`${POOL_ENDPOINT}/session`, dataRoutes.deleteSession, async (request, reply) => {
    const live = await liveSession(request, reply);
    if (!live) return reply;
    await live.manager.stop(live.identifier);
    return reply.status(204).send();
  });

  app.get(`${POOL_ENDPOINT}/listSessions`, dataRoutes.listSessions, async (request) => {
    const { manager, query } = await poolFor(deps.pools, request);
    const skip = optionalInteger(query.skip, 'skip', { min: 0, max: Number.MAX_SAFE_INTEGER }) ?? 0;
    // Every node's sessions: this node's from memory, the others' from the store, oldest first.
    const all = [
      ...manager.listSessions().map((session) => ({
        createdAt: session.allocatedAt,
        render: () => sessionResource(manager, session),
      })),
      ...(await manager.sessionsElsewhere()).map((stored) => ({
        createdAt: Date.parse(stored.row.allocatedAt ?? stored.row.createdAt),
        render: () => Promise.resolve(storedSessionResource(stored)),
      })),
    ].sort((a, b) => a.createdAt - b.createdAt);
    const page = await Promise.all(all.slice(skip, skip + PAGE_SIZE).map((entry) => entry.render()));
    const path = request.url.split('?')[0] ?? '';
    return {
      sessions: page,
      ...(skip + PAGE_SIZE < all.length && {
        nextLink: `${deps.publicUrl()}${path}?api-version=${query['api-version'] ?? ''}&skip=${skip + PAGE_SIZE}`,
      }),
    };
  });

  app.post(`${POOL_ENDPOINT}/.management/stopSession`, dataRoutes.stopSession, async (request, reply) => {
    const live = await liveSession(request, reply, { versionOptional: true });
    if (!live) return reply;
    const { manager, identifier } = live;
    if (!(await manager.stop(identifier))) throw notFound(identifier);
    return reply
      .type('text/plain; charset=utf-8')
      .send(`Session ${identifier} in session pool ${manager.name} stopped.`);
  });

  // The console is the container's output: the same right as running code in it.
  app.get(`${POOL_ENDPOINT}/.management/logs`, dataRoutes.sessionLogs, async (request, reply) => {
    const tail = optionalInteger((request.query as Query).tail, 'tail', { min: 1, max: 10_000 }) ?? 200;
    const live = await liveSession(request, reply, { versionOptional: true });
    if (!live) return reply;
    const { manager, identifier } = live;
    const redacted = (lines: ConsoleLine[]) =>
      lines.map((line) => ({ ...line, text: manager.redact(line.text) }));
    if (manager.containerType !== 'CustomContainer') {
      throw new AppError(
        ErrorCode.InvalidParameter,
        `session pool ${manager.name} is a ${manager.containerType} pool: its output comes with each execution`,
      );
    }
    if (live.session) {
      return {
        identifier,
        sessionId: live.session.id,
        live: true,
        lines: redacted(await readConsoleTail(live.session.instance.consoleLogPath, tail)),
      };
    }
    const last = await deps.pools.lastEndedSession(manager.id, identifier);
    if (!last) {
      throw new AppError(
        ErrorCode.SessionNotFound,
        `The identifier ${JSON.stringify(identifier)} has had no session lately.`,
      );
    }
    return {
      identifier,
      sessionId: last.id,
      live: false,
      lines: redacted(await readConsoleTail(deps.consoleLogs.pathOf(last.id), tail)),
    };
  });

  app.get(`${POOL_ENDPOINT}/.management/startFailures`, dataRoutes.startFailures, async (request) => {
    const { manager } = await poolFor(deps.pools, request, { versionOptional: true });
    const value = await Promise.all(
      manager.recentStartFailures().map(async (failure) => {
        const lines = await readConsoleTail(deps.consoleLogs.pathOf(failure.sandboxId), START_FAILURE_LINES);
        return { ...failure, console: boundedExcerpt(lines.map((line) => manager.redact(line.text))) };
      }),
    );
    return { value };
  });

  app.get(`${POOL_ENDPOINT}/metadata`, dataRoutes.metadata, async (request) => {
    const { manager } = await poolFor(deps.pools, request);
    const pool = await deps.pools.getPool(manager.id);
    const dates = { createdAt: pool?.createdAt, lastUpdatedAt: pool?.updatedAt };
    const container = manager.container;
    if (container) {
      return {
        containerType: manager.containerType,
        runtimes: [],
        preInstalledPackages: [],
        image: container.image,
        imageDigest: container.imageDigest,
        ...dates,
      };
    }
    const image = await deps.imageMetadata(manager.interpreterType);
    return {
      containerType: manager.containerType,
      runtimes: image.runtimes,
      preInstalledPackages: image.preInstalledPackages,
      ...dates,
    };
  });
}
