/**
 * @module output
 * `--output json|table|tsv|csv`, as az prints the first three: JSON whole (the default, for scripts and
 * jq); a table of chosen columns under a dashed header; tab-separated values without a header, for
 * `cut` and `read`; and CSV with a header row (RFC 4180 quoting), for spreadsheets.
 */

export const FORMATS = ['json', 'table', 'tsv', 'csv'] as const;
export type Format = (typeof FORMATS)[number];

/** The columns a command shows in table and tsv output. */
export type Columns<T> = [header: string, value: (row: T) => unknown][];

function cell(value: unknown): string {
  if (value === undefined || value === null) return '';
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return JSON.stringify(value);
}

/** Columns for rows nobody chose columns for: their scalar fields. */
function scalarColumns(rows: object[]): Columns<object> {
  const keys = [
    ...new Set(
      rows.flatMap((row) =>
        Object.entries(row)
          .filter(([, value]) => value === null || typeof value !== 'object')
          .map(([key]) => key),
      ),
    ),
  ];
  return keys.map((key) => [key, (row) => (row as Record<string, unknown>)[key]]);
}

export function render<T extends object>(data: T | T[], format: Format, columns?: Columns<T>): string {
  if (format === 'json') return `${JSON.stringify(data, null, 2)}\n`;
  const rows = Array.isArray(data) ? data : [data];
  const chosen = columns ?? scalarColumns(rows);
  const cells = rows.map((row) => chosen.map(([, value]) => cell(value(row)).replace(/[\t\n]/g, ' ')));
  if (format === 'tsv') return cells.map((line) => `${line.join('\t')}\n`).join('');
  if (format === 'csv') {
    const field = (value: string) => (/[",\r\n]/.test(value) ? `"${value.replace(/"/g, '""')}"` : value);
    const rawCells = rows.map((row) => chosen.map(([, value]) => cell(value(row))));
    return [chosen.map(([header]) => header), ...rawCells]
      .map((line) => `${line.map(field).join(',')}\r\n`)
      .join('');
  }
  if (rows.length === 0) return '';
  const headers = chosen.map(([header]) => header);
  const widths = headers.map((header, i) => Math.max(header.length, ...cells.map((line) => line[i]!.length)));
  const line = (values: string[]) =>
    `${values
      .map((v, i) => v.padEnd(widths[i]!))
      .join('  ')
      .trimEnd()}\n`;
  return line(headers) + line(widths.map((w) => '-'.repeat(w))) + cells.map(line).join('');
}
