/**
 * Every benchmark runs in its quick mode (real sandboxes, a few samples per phase), so a change that
 * breaks one fails the suite instead of the next person who measures. Speed is not asserted here:
 * the numbers come from full runs (docs/benchmarks.md); this checks that each phase runs and reports.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, it } from 'node:test';

import { skipReason } from '../packages/server/test/integration/harness.js';

const run = promisify(execFile);

/** The rows of the Markdown table a benchmark printed, without its header and separator. */
function tableRows(stdout: string): string[] {
  return stdout
    .split('\n')
    .filter((line) => line.startsWith('| ') && !/^\|[-| ]+\|$/.test(line))
    .slice(1);
}

const BENCHMARKS: { name: string; rows: number }[] = [
  { name: 'server', rows: 7 },
  { name: 'sandbox', rows: 10 },
  { name: 'custom-container', rows: 4 },
  { name: 'soak', rows: 3 },
  { name: 'cluster', rows: 6 },
  { name: 'density', rows: 9 },
  { name: 'request-path', rows: 6 },
  { name: 'e2b', rows: 3 },
];

describe('benchmarks in quick mode', { skip: skipReason }, () => {
  for (const { name, rows } of BENCHMARKS) {
    it(`${name}: every phase runs and reports its row`, async () => {
      const script = fileURLToPath(new URL(`./${name}.bench.ts`, import.meta.url));
      const { stdout } = await run(process.execPath, ['--import', 'tsx', script, '--quick'], {
        timeout: 240_000,
        maxBuffer: 16 * 1024 * 1024,
      });
      const reported = tableRows(stdout);
      assert.equal(reported.length, rows, `${name} printed:\n${stdout}`);
      for (const row of reported) assert.doesNotMatch(row, /NaN|undefined|Infinity/, row);
    });
  }
});
