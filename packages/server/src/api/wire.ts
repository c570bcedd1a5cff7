/**
 * @module api/wire
 * Reading Azure-shaped JSON the way Azure does: property names match case-insensitively, enums match
 * in any case and come back in their canonical spelling, unknown properties are ignored, and every
 * bad value is an InvalidParameter error whose `target` names the property.
 */

import { AppError, ErrorCode } from '../errors.js';

export type JsonRecord = Record<string, unknown>;

export const isRecord = (value: unknown): value is JsonRecord =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** The value of `name` in `record`, whatever the case of its key. */
/** A string an agent or client sent, or '' for anything else (an object never turns into "[object Object]"). */
export const textOf = (value: unknown): string =>
  typeof value === 'string' ? value : typeof value === 'number' ? String(value) : '';

export function field(record: JsonRecord | undefined, name: string): unknown {
  if (!record) return undefined;
  if (name in record) return record[name];
  const lower = name.toLowerCase();
  for (const key of Object.keys(record)) if (key.toLowerCase() === lower) return record[key];
  return undefined;
}

/** The first of several spellings of one property that is present (legacy and current names). */
export function firstField(record: JsonRecord | undefined, names: string[]): unknown {
  for (const name of names) {
    const value = field(record, name);
    if (value !== undefined) return value;
  }
  return undefined;
}

export function invalid(target: string, message: string): AppError {
  return new AppError(ErrorCode.InvalidParameter, `${target} ${message}`, { target });
}

export function optionalObject(value: unknown, target: string): JsonRecord | undefined {
  if (value === undefined || value === null) return undefined;
  if (!isRecord(value)) throw invalid(target, 'must be an object');
  return value;
}

export function optionalString(value: unknown, target: string, maxLength = 4096): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') throw invalid(target, 'must be a string');
  if (value.length > maxLength) throw invalid(target, `must be at most ${maxLength} characters`);
  return value;
}

/** A number in `range`; numbers sent as strings are accepted, as ARM accepts them. */
export function optionalNumber(
  value: unknown,
  target: string,
  range: { min: number; max: number; integer?: boolean },
): number | undefined {
  if (value === undefined || value === null) return undefined;
  const number = typeof value === 'string' && value.trim() !== '' ? Number(value) : value;
  const kind = range.integer ? 'an integer' : 'a number';
  if (typeof number !== 'number' || !(range.integer ? Number.isInteger(number) : Number.isFinite(number))) {
    throw invalid(target, `must be ${kind}`);
  }
  if (number < range.min || number > range.max) {
    throw invalid(target, `must be from ${range.min} to ${range.max}, got ${number}`);
  }
  return number;
}

export function optionalInteger(
  value: unknown,
  target: string,
  range: { min: number; max: number },
): number | undefined {
  return optionalNumber(value, target, { ...range, integer: true });
}

/** One of `allowed`, matched case-insensitively and returned in its canonical spelling. */
export function optionalEnum<T extends string>(
  value: unknown,
  target: string,
  allowed: readonly T[],
): T | undefined {
  if (value === undefined || value === null) return undefined;
  const match =
    typeof value === 'string' ? allowed.find((a) => a.toLowerCase() === value.toLowerCase()) : undefined;
  if (match === undefined)
    throw invalid(target, `must be one of ${allowed.join(', ')}, got ${JSON.stringify(value)}`);
  return match;
}

export function optionalBoolean(value: unknown, target: string): boolean | undefined {
  if (value === undefined || value === null) return undefined;
  if (value === true || value === 'true' || value === 'True') return true;
  if (value === false || value === 'false' || value === 'False') return false;
  throw invalid(target, 'must be true or false');
}

/** An ISO 8601 time, normalized to UTC with milliseconds (the form the store compares as text). */
export function optionalTime(value: unknown, target: string): string | undefined {
  if (value === undefined || value === null) return undefined;
  const parsed = typeof value === 'string' ? Date.parse(value) : NaN;
  if (Number.isNaN(parsed)) throw invalid(target, 'must be an ISO 8601 time, e.g. 2026-11-26T12:00:00Z');
  return new Date(parsed).toISOString();
}

/**
 * The `nextLink` of a page of rows read in `seq` order: the same filters, the same page size, and
 * `$skipToken` after the page's last row. None when the page was not full, so there is no more.
 */
export function nextLinkAfter(
  base: string,
  filters: Record<string, string | undefined>,
  page: { seq: number }[],
  top: number,
): string | undefined {
  const last = page.at(-1);
  if (page.length < top || !last) return undefined;
  const kept = new URLSearchParams(
    Object.entries(filters).filter((entry): entry is [string, string] => entry[1] !== undefined),
  );
  return `${base}?${kept.toString()}&$top=${top}&$skipToken=${last.seq}`;
}

/** JSON merge patch (RFC 7396) with keys matched case-insensitively against the target's. */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isRecord(patch)) return patch;
  const result: JsonRecord = isRecord(target) ? { ...target } : {};
  for (const [key, value] of Object.entries(patch)) {
    const existing = Object.keys(result).find((k) => k.toLowerCase() === key.toLowerCase()) ?? key;
    result[existing] = value === null ? undefined : mergePatch(result[existing], value);
  }
  return Object.fromEntries(Object.entries(result).filter(([, value]) => value !== undefined));
}
