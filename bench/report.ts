/** What every benchmark shares: percentiles, number formatting, the machine line and the results file. */

import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, release, totalmem } from 'node:os';
import { parseArgs } from 'node:util';

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

/**
 * A benchmark's sizes from its flags: each has a full default and a quick one. `--quick` runs every
 * phase with the quick sizes (seconds, not minutes), so the test suite can run each benchmark and a
 * change that breaks one fails CI; its numbers are not kept. `flags` are booleans, `texts` strings
 * with their defaults.
 */
export function benchArgs<K extends string, F extends string = never, S extends string = never>(
  sizes: Record<K, { full: number; quick: number }>,
  flags: readonly F[] = [],
  texts: Record<S, string> = {} as Record<S, string>,
): { quick: boolean } & Record<K, number> & Record<F, boolean> & Record<S, string> {
  const options: Record<string, { type: 'string' } | { type: 'boolean' }> = { quick: { type: 'boolean' } };
  for (const name of Object.keys(sizes)) options[name] = { type: 'string' };
  for (const name of Object.keys(texts)) options[name] = { type: 'string' };
  for (const flag of flags) options[flag] = { type: 'boolean' };
  const { values } = parseArgs({ options }) as { values: Record<string, string | boolean | undefined> };
  const quick = values.quick === true;
  const result = { quick } as { quick: boolean } & Record<K, number> & Record<F, boolean> & Record<S, string>;
  for (const flag of flags) (result as Record<F, boolean>)[flag] = values[flag] === true;
  for (const name of Object.keys(texts) as S[]) {
    const given = values[name];
    (result as Record<S, string>)[name] = typeof given === 'string' ? given : texts[name];
  }
  for (const name of Object.keys(sizes) as K[]) {
    const given = values[name];
    const value = typeof given === 'string' ? Number(given) : sizes[name][quick ? 'quick' : 'full'];
    if (!Number.isFinite(value) || value <= 0) throw new Error(`--${name} must be a positive number`);
    (result as Record<K, number>)[name] = value;
  }
  return result;
}

/** Prints the table and, unless it was a quick run, keeps it as bench/results/<name>-<date>.md. */
export function writeReport(name: string, table: string, quick = false): void {
  console.log(table);
  if (quick) return;
  mkdirSync(new URL('./results/', import.meta.url), { recursive: true });
  writeFileSync(
    new URL(`./results/${name}-${new Date().toISOString().slice(0, 10)}.md`, import.meta.url),
    `${table}\n`,
  );
}
