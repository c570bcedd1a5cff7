/**
 * @module format
 * How the dashboard writes numbers, durations and identifiers.
 */

/** A short, stable stand-in for an identifier (FNV-1a): tells sessions apart without showing whose they are. */
export function identifierHash(identifier: string): string {
  let hash = 0x811c9dc5;
  for (const byte of new TextEncoder().encode(identifier)) {
    hash ^= byte;
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash.toString(16).padStart(8, '0');
}

/** A larger and a smaller unit, the smaller left out when it is zero: "4 m 05 s", "5 m". */
const twoUnits = (major: number, majorUnit: string, minor: number, minorUnit: string) =>
  minor === 0
    ? `${major} ${majorUnit}`
    : `${major} ${majorUnit} ${String(minor).padStart(2, '0')} ${minorUnit}`;

/** 3 s, 4 m 05 s, 5 m, 2 h 10 m, 3 d 4 h. */
export function duration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '–';
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return twoUnits(Math.floor(s / 60), 'm', s % 60, 's');
  if (s < 86_400) return twoUnits(Math.floor(s / 3600), 'h', Math.floor((s % 3600) / 60), 'm');
  return `${Math.floor(s / 86_400)} d ${Math.floor((s % 86_400) / 3600)} h`;
}

/** CPU time: tenths of a second while it is short. */
export function cpuTime(seconds: number): string {
  return seconds < 60 ? `${seconds.toFixed(1)} s` : duration(seconds);
}

export function bytes(value: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let n = value;
  let unit = 0;
  while (n >= 1024 && unit < units.length - 1) {
    n /= 1024;
    unit++;
  }
  return `${n >= 100 || unit === 0 ? Math.round(n) : n.toFixed(1)} ${units[unit]}`;
}

export function milliseconds(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return '–';
  return ms < 10 ? `${ms.toFixed(1)} ms` : ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(2)} s`;
}

/** "1 error", "3 errors". */
export function count(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? '' : 's'}`;
}

export function percent(fraction: number): string {
  return `${Math.round(fraction * 100)}%`;
}

/** Reserved memory over time: GiB·s while it is small, GiB·h from an hour's worth. */
export function gibTime(gibSeconds: number): string {
  return gibSeconds < 3600 ? `${number(gibSeconds, 1)} GiB·s` : `${number(gibSeconds / 3600, 2)} GiB·h`;
}

/** Cores: up to two decimals, as sessions come in quarters. */
export function cores(value: number): string {
  return value.toLocaleString('en', { maximumFractionDigits: 2 });
}

export function number(value: number, digits = 0): string {
  return value.toLocaleString('en', { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

export function clockTime(iso: string): string {
  return new Date(iso).toLocaleTimeString('en-GB', { hour12: false });
}
