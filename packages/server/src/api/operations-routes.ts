/**
 * @module api/operations-routes
 * What operators and their tools poll: Prometheus metrics (for a Reader of every pool, so a scraper
 * gets a read-only key) and readiness (public, like the liveness probe, for load balancers and
 * orchestrators). Without a credential readiness says ready or not and nothing else; a caller with
 * a credential also gets the checks, the pools among them limited to those it may read, since a
 * check names a pool and says why its sandboxes fail.
 */

import type { FastifyInstance } from 'fastify';
import { Type, type Static } from 'typebox';

import type { Authenticator } from '../auth/authenticator.js';
import { allows } from '../auth/roles.js';
import type { Metrics, NodeMemory } from '../observability/metrics.js';
import type { PoolService } from '../pool/pool-service.js';
import type { AuditBacklog as Backlog } from '../store/audit-journal.js';
import type { Store } from '../store/store.js';
import { route } from './schemas/common.js';

const Check = Type.Object({
  name: Type.String(),
  ok: Type.Boolean(),
  detail: Type.Optional(Type.String({ description: 'Why not, when the check fails.' })),
});
const AuditBacklog = Type.Object(
  {
    waiting: Type.Integer({ description: 'Entries this node recorded that the store has not taken yet.' }),
    oldestAt: Type.Union([Type.String(), Type.Null()], { description: 'When the oldest was recorded.' }),
    storeError: Type.Union([Type.String(), Type.Null()], {
      description: 'Why the store refused the latest write; null once one succeeded.',
    }),
    full: Type.Boolean({
      description: 'Audited requests are refused (503 AuditBacklogFull) until it drains.',
    }),
  },
  { description: 'The node’s audit journal: entries waiting for the store.' },
);
const Readiness = Type.Object({
  status: Type.Union([Type.Literal('ready'), Type.Literal('notReady')]),
  checks: Type.Optional(Type.Array(Check, { description: 'Only for a caller with a credential.' })),
  memory: Type.Optional(Type.Ref('NodeMemory', { description: 'Only for a caller with a credential.' })),
  audit: Type.Optional(AuditBacklog),
});

export interface ReadinessDeps {
  store: Store;
  pools: PoolService;
  /** Whether sandboxes can start: resolves, or rejects saying why not. */
  runtimeUsable: () => Promise<void>;
  /** This node's memory: not ready while its sandboxes are short of it. */
  memory: () => NodeMemory;
  /** The audit entries waiting for the store: not ready while the journal is full. */
  audit: () => Backlog;
  /** Readiness is public; a credential sent with it unlocks the details. */
  authenticator: Authenticator;
}

type CheckResult = Static<typeof Check>;

const gib = (bytes: number) => `${(bytes / 1024 ** 3).toFixed(2)} GiB`;

async function check(name: string, probe: () => Promise<string | undefined>): Promise<CheckResult> {
  try {
    const problem = await probe();
    return problem === undefined ? { name, ok: true } : { name, ok: false, detail: problem };
  } catch (error) {
    return { name, ok: false, detail: error instanceof Error ? error.message : String(error) };
  }
}

export function registerOperationsRoutes(
  app: FastifyInstance,
  deps: ReadinessDeps & { metrics: Metrics },
): void {
  app.get(
    '/metrics',
    route({
      operationId: 'Metrics_Get',
      access: { action: 'pools/read', on: 'everything' },
      summary: 'Prometheus metrics (needs the Reader role on every pool)',
      tag: 'Operations',
      response: {
        200: {
          description: 'The Prometheus text exposition format.',
          content: { 'text/plain': { schema: Type.String() } },
        },
      },
    }),
    async (request, reply) => {
      return reply.type(deps.metrics.registry.contentType).send(await deps.metrics.registry.metrics());
    },
  );

  app.get(
    '/readyz',
    route({
      operationId: 'Health_Ready',
      access: 'public',
      summary: 'Ready to serve: the store answers, sandboxes can start, every pool is at its warm target',
      description:
        '200 when every check passes, else 503. No credential needed; with one, the answer lists the checks and why any failed (pools limited to those the caller may read).',
      tag: 'Health',
      response: { 200: Readiness, 503: Readiness },
    }),
    async (request, reply) => {
      const principal =
        request.headers.authorization === undefined
          ? undefined
          : await deps.authenticator.authenticate(request.headers.authorization);
      const checks = await Promise.all([
        check('store', async () => {
          await deps.store.listPools({});
          return undefined;
        }),
        check('runtime', async () => {
          await deps.runtimeUsable();
          return undefined;
        }),
        check('memory', () => {
          const memory = deps.memory();
          return Promise.resolve(
            memory.underPressure
              ? `the sandboxes hold ${gib(memory.workingSetBytes)}, above the mark of ${gib(memory.pressureMarkBytes ?? 0)} (their limit is ${gib(memory.sandboxLimitBytes ?? 0)}): no new session is admitted, and the longest idle end`
              : undefined,
          );
        }),
        check('audit', () => {
          const backlog = deps.audit();
          return Promise.resolve(
            backlog.full
              ? `${backlog.waiting} audit entries wait for the store (since ${backlog.oldestAt ?? '?'}): audited requests are refused until it takes them (${backlog.storeError ?? 'no error yet'})`
              : undefined,
          );
        }),
        ...deps.pools
          .snapshot()
          .map((pool) =>
            check(`pool ${pool.pool}`, () =>
              Promise.resolve(
                pool.ready + pool.starting >= pool.readyTarget && pool.consecutiveStartFailures === 0
                  ? undefined
                  : pool.consecutiveStartFailures > 0
                    ? `${pool.consecutiveStartFailures} sandbox starts failed in a row: ${pool.lastStartError ?? 'unknown error'}`
                    : `${pool.ready} of ${pool.readyTarget} ready sandboxes`,
              ),
            ),
          ),
      ]);
      const ready = checks.every((c) => c.ok);
      const status = ready ? 'ready' : 'notReady';
      if (!principal) return reply.status(ready ? 200 : 503).send({ status });
      const hidden = new Set(
        deps.pools
          .snapshot()
          .filter((pool) => !allows(principal, 'pools/read', pool.id))
          .map((pool) => `pool ${pool.pool}`),
      );
      return reply.status(ready ? 200 : 503).send({
        status,
        checks: checks.filter((c) => !hidden.has(c.name)),
        memory: deps.memory(),
        audit: deps.audit(),
      });
    },
  );
}
