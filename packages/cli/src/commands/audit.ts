/**
 * @module commands/audit
 * `sandpool audit list`: who changed pools, ran code and managed credentials, when, and how it went.
 */

import { Command } from '@commander-js/extra-typings';
import type { AuditEntry } from '@sandpool/sdk';

import type { Context } from '../context.js';
import type { Columns } from '../output.js';
import { pastTime } from './arguments.js';

const AUDIT_COLUMNS: Columns<AuditEntry> = [
  ['At', (e) => e.at],
  ['Principal', (e) => e.principal],
  ['Action', (e) => e.action],
  ['Pool', (e) => e.pool],
  ['Identifier', (e) => e.identifier],
  ['Status', (e) => e.status],
  ['DurationMs', (e) => e.durationMs],
];

export function auditCommand(context: () => Context): Command {
  return new Command('audit').description('Read the audit trail.').addCommand(
    new Command('list')
      .description('List audit entries, oldest first (needs Reader or Contributor on every pool).')
      .option('--since <time>', 'ISO 8601 time or an age such as 24h or 30d', pastTime('--since'))
      .option('--until <time>', 'ISO 8601 time or an age', pastTime('--until'))
      .option('--principal <principal>', 'e.g. key:0123456789ab')
      .option('--action <action>', 'e.g. code.execute, pool.delete, key.create')
      .option('--pool <pool>', 'one pool')
      .action(async (flags) => {
        const cli = context();
        const entries = await cli.client().audit.list({
          ...(flags.since && { since: flags.since }),
          ...(flags.until && { until: flags.until }),
          ...(flags.principal && { principal: flags.principal }),
          ...(flags.action && { action: flags.action }),
          ...(flags.pool && { pool: flags.pool }),
        });
        cli.print(entries, AUDIT_COLUMNS);
      }),
  );
}
