/**
 * @module audit-backlog
 * The audit entries the node answering has recorded and its store has not yet taken (a database
 * restarting, a locked file): how many, since when, and why, read from its readiness, which answers
 * without the store. Full, the node refuses the requests it would audit.
 */

import type { Readiness } from '@sandpool/sdk';

import { clockTime } from './format.js';

export function AuditBacklogNote({ readiness }: { readiness: Readiness | undefined }) {
  const audit = readiness?.audit;
  if (!audit || audit.waiting === 0) return null;
  return (
    <p class={audit.full ? 'error' : 'warn'} role="status" data-testid="audit-backlog">
      {audit.waiting} audit {audit.waiting === 1 ? 'entry waits' : 'entries wait'} on this node for the store
      {audit.oldestAt ? ` (since ${clockTime(audit.oldestAt)})` : ''}
      {audit.full ? ': it refuses audited requests until the store takes them' : ''}
      {audit.storeError ? `. The store: ${audit.storeError}` : ''}
    </p>
  );
}
