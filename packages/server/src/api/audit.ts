/**
 * @module api/audit
 * The audit trail: every call of a route that changes something or runs code (its schema names an
 * `audit` action) is recorded with the principal, the pool and identifier it touched, the HTTP
 * status and the duration; refused calls too, so failed attempts show. Entries go through the node's
 * journal (store/audit-journal), so a store that does not answer delays them and loses none.
 * `GET /sandpool/audit` reads it for a Reader or Contributor of every pool. Code and file contents are
 * never recorded.
 */

import type { FastifyInstance, FastifyRequest } from 'fastify';

import { AppError, ErrorCode } from '../errors.js';
import type { AuditJournal } from '../store/audit-journal.js';
import type { AuditQuery, AuditRow, Store } from '../store/store.js';
import { auditRoutes } from './schemas/audit.js';
import { nextLinkAfter, optionalInteger, optionalString, optionalTime } from './wire.js';

const PAGE_SIZE = 100;
const MAX_PAGE_SIZE = 1000;

const entryResource = ({ seq, ...entry }: AuditRow) => ({ id: String(seq), ...entry });

/** The client's own request id, when it sent a printable one of at most 200 characters. */
export function clientRequestId(request: FastifyRequest): string | null {
  const value = request.headers['x-ms-client-request-id'];
  return typeof value === 'string' && /^[\x21-\x7e]{1,200}$/.test(value) ? value : null;
}

/** How long a client refused for a full journal waits: the store is retried every few seconds. */
const BACKLOG_RETRY_SECONDS = 5;

export function registerAudit(
  app: FastifyInstance,
  deps: { store: Store; journal: AuditJournal; now: () => number; publicUrl: () => string },
): void {
  // A request the trail could not record is not served: while the journal is full, audited routes
  // answer 503 before they act (and, having done nothing, are not recorded).
  app.addHook('onRequest', (request, _reply, done) => {
    if (request.routeOptions.config.audit === undefined || !deps.journal.full) {
      done();
      return;
    }
    done(
      new AppError(
        ErrorCode.AuditBacklogFull,
        'the store has not taken this node’s audit entries for a while and its journal is full; nothing was done',
        { details: { retryAfterSeconds: BACKLOG_RETRY_SECONDS } },
      ),
    );
  });

  app.addHook('onResponse', async (request, reply) => {
    const action = request.routeOptions.config.audit;
    if (action === undefined || reply.getHeader('x-ms-error-code') === ErrorCode.AuditBacklogFull) return;
    const params = request.params as { resourceGroup?: string; pool?: string; name?: string };
    const query = request.query as { identifier?: unknown };
    const principal = (request.principal as typeof request.principal | null)?.id ?? 'unauthenticated';
    deps.journal.record({
      at: new Date(deps.now()).toISOString(),
      principal,
      action,
      resourceGroup: params.resourceGroup ?? null,
      pool: params.pool ?? params.name ?? null,
      identifier: typeof query.identifier === 'string' ? query.identifier : null,
      status: reply.statusCode,
      durationMs: Math.round(reply.elapsedTime * 10) / 10,
      requestId: request.id,
      clientRequestId: clientRequestId(request),
    });
  });

  app.get('/sandpool/audit', auditRoutes.list, async (request) => {
    const raw = request.query as Record<string, string | undefined>;
    const top = optionalInteger(raw.$top, '$top', { min: 1, max: MAX_PAGE_SIZE }) ?? PAGE_SIZE;
    const since = optionalTime(raw.since, 'since');
    const until = optionalTime(raw.until, 'until');
    const principal = optionalString(raw.principal, 'principal', 300);
    const action = optionalString(raw.action, 'action', 100);
    const pool = optionalString(raw.pool, 'pool', 63);
    const query: AuditQuery = {
      limit: top,
      afterSeq: optionalInteger(raw.$skipToken, '$skipToken', { min: 0, max: Number.MAX_SAFE_INTEGER }) ?? 0,
      ...(since && { since }),
      ...(until && { until }),
      ...(principal && { principal }),
      ...(action && { action }),
      ...(pool && { pool }),
    };
    const page = await deps.store.listAudit(query);
    const nextLink = nextLinkAfter(
      `${deps.publicUrl()}/sandpool/audit`,
      { since: raw.since, until: raw.until, principal, action, pool },
      page,
      top,
    );
    return { value: page.map(entryResource), ...(nextLink && { nextLink }) };
  });
}
