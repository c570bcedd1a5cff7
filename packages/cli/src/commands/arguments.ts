/**
 * @module commands/arguments
 * Parsers for option values, failing with a usage error that names the flag.
 */

import { readFileSync } from 'node:fs';

import { UsageError } from '../failure.js';

export const integer =
  (flag: string) =>
  (value: string): number => {
    if (!/^-?\d+$/.test(value)) throw new UsageError(`${flag} takes a whole number; got "${value}"`);
    return Number(value);
  };

export const number =
  (flag: string) =>
  (value: string): number => {
    const parsed = Number(value);
    if (value.trim() === '' || !Number.isFinite(parsed))
      throw new UsageError(`${flag} takes a number; got "${value}"`);
    return parsed;
  };

/** Repeatable variadic options (`--secrets a=1 b=2 --secrets c=3`) gather into one list. */
export const collect = (value: string, previous: string[] | undefined): string[] => [
  ...(previous ?? []),
  value,
];

/** az's convention: a value `@path` is the content of the file at path. */
export function valueOrFile(value: string): string {
  if (!value.startsWith('@')) return value;
  try {
    return readFileSync(value.slice(1), 'utf8');
  } catch (error) {
    throw new UsageError(`cannot read ${value.slice(1)}: ${(error as Error).message}`);
  }
}

/** `--filename dir/name` means `--path dir --filename name`, as in az. */
export function splitFilename(filename: string, path: string | undefined): { name: string; path?: string } {
  const at = filename.lastIndexOf('/');
  if (at < 0) return { name: filename, ...(path !== undefined && { path }) };
  const directory = filename.slice(0, at).replace(/^\/mnt\/data\/?/, '');
  const joined = [path, directory].filter(Boolean).join('/');
  return { name: filename.slice(at + 1), ...(joined && { path: joined }) };
}

const UNIT_MS = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/** A time as ISO 8601: given as such, or as an age (`30m`, `24h`, `30d`) before `now`. */
export const pastTime =
  (flag: string, now: () => number = Date.now) =>
  (value: string): string => {
    const age = /^(\d+)([smhd])$/.exec(value);
    if (age) return new Date(now() - Number(age[1]) * UNIT_MS[age[2] as keyof typeof UNIT_MS]).toISOString();
    const parsed = Date.parse(value);
    if (Number.isNaN(parsed)) {
      throw new UsageError(`${flag} takes an ISO 8601 time or an age such as 30m, 24h or 7d; got "${value}"`);
    }
    return new Date(parsed).toISOString();
  };
