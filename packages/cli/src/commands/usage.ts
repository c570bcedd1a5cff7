/**
 * @module commands/usage
 * `sandpool usage`: what sessions and prewarmed sandboxes consumed, by pool or by a pool tag, over
 * a window; `-o csv` for a spreadsheet.
 */

import { Command } from '@commander-js/extra-typings';
import type { UsageTotals } from '@sandpool/sdk';

import type { Context } from '../context.js';
import type { Columns } from '../output.js';
import { pastTime } from './arguments.js';

const USAGE_COLUMNS: Columns<UsageTotals> = [
  ['Key', (u) => u.key],
  ['Sessions', (u) => u.sessions],
  ['SessionSeconds', (u) => u.sessionSeconds],
  ['CpuSeconds', (u) => u.cpuSeconds],
  ['MemoryGibSeconds', (u) => u.memoryGibSeconds],
  ['Executions', (u) => u.executions],
  ['ReadySeconds', (u) => u.readySeconds],
  ['ReadyMemoryGibSeconds', (u) => u.readyMemoryGibSeconds],
];

export function usageCommand(context: () => Context): Command {
  return new Command('usage')
    .description(
      'Usage for cost attribution, by pool or by a pool tag (needs Reader or Contributor on every pool).',
    )
    .option('--by <grouping>', 'pool, or tag:<name> such as tag:costCenter', 'pool')
    .option('--since <time>', 'ISO 8601 time or an age such as 30d (default 30d)', pastTime('--since'))
    .option('--until <time>', 'ISO 8601 time or an age (default now)', pastTime('--until'))
    .action(async (flags) => {
      const cli = context();
      const usage = await cli.client().usage({
        by: flags.by,
        ...(flags.since && { since: flags.since }),
        ...(flags.until && { until: flags.until }),
      });
      cli.print(usage.value, USAGE_COLUMNS);
    });
}
