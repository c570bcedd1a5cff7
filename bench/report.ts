/** What every benchmark shares: percentiles, number formatting, the machine line and the results file. */

import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, release, totalmem } from 'node:os';

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

export function summary(samples: number[]): { p50: number; p99: number; min: number; n: number } {
  const sorted = [...samples].sort((a, b) => a - b);
  return { p50: percentile(sorted, 50), p99: percentile(sorted, 99), min: sorted[0]!, n: sorted.length };
}

export const fmt = (n: number) => (n < 10 ? n.toFixed(2) : n.toFixed(1));

export function machine(): string {
  const cpu = cpus()[0]?.model ?? 'unknown CPU';
  const runc = execFileSync('/usr/sbin/runc', ['--version'], { encoding: 'utf8' }).split('\n')[0];
  return `${cpus().length} vCPU (${cpu}), ${Math.round(totalmem() / 2 ** 30)} GiB, kernel ${release()}, Node ${process.version}, ${runc}`;
}

/** Prints the table and keeps it as bench/results/<name>-<date>.md. */
export function writeReport(name: string, table: string): void {
  console.log(table);
  mkdirSync(new URL('./results/', import.meta.url), { recursive: true });
  writeFileSync(
    new URL(`./results/${name}-${new Date().toISOString().slice(0, 10)}.md`, import.meta.url),
    `${table}\n`,
  );
}
