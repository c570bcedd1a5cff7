/**
 * @module pool/console-log
 * A custom container's console output. conmon writes it in the CRI log format (one line per entry:
 * time, stream, full or partial, text) and caps the file; when the session ends the file is kept
 * in the archive directory, so its output stays readable for the retention period.
 */

import { copyFile, mkdir, open, readdir, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';

export interface ConsoleLine {
  time: string;
  stream: 'stdout' | 'stderr';
  text: string;
}

/** The most that is read back from the end of a log, whatever `tail` asks for. */
const MAX_READ_BYTES = 1024 * 1024;

/** Parses CRI log lines; partial entries (`P`) are joined with the entry that completes them. */
export function parseConsoleLog(text: string): ConsoleLine[] {
  const lines: ConsoleLine[] = [];
  let partial = '';
  for (const raw of text.split('\n')) {
    const first = raw.indexOf(' ');
    const second = raw.indexOf(' ', first + 1);
    const third = raw.indexOf(' ', second + 1);
    if (first === -1 || second === -1) continue;
    const stream = raw.slice(first + 1, second);
    if (stream !== 'stdout' && stream !== 'stderr') continue;
    const tag = third === -1 ? raw.slice(second + 1) : raw.slice(second + 1, third);
    const content = third === -1 ? '' : raw.slice(third + 1);
    if (tag === 'P') {
      partial += content;
      continue;
    }
    lines.push({ time: raw.slice(0, first), stream, text: partial + content });
    partial = '';
  }
  return lines;
}

/** The last `tail` lines of the log at `path`; none when there is no such file. */
export async function readConsoleTail(path: string, tail: number): Promise<ConsoleLine[]> {
  let file;
  try {
    file = await open(path, 'r');
  } catch {
    return [];
  }
  try {
    const { size } = await file.stat();
    const length = Math.min(size, MAX_READ_BYTES);
    const buffer = Buffer.alloc(length);
    await file.read(buffer, 0, length, size - length);
    let text = buffer.toString('utf8');
    // A read that starts mid-file starts mid-line: drop the fragment.
    if (length < size) text = text.slice(text.indexOf('\n') + 1);
    return parseConsoleLog(text).slice(-tail);
  } finally {
    await file.close();
  }
}

/** Where ended sessions' logs are kept, by sandbox id. */
export class ConsoleLogArchive {
  constructor(private readonly dir: string) {}

  pathOf(sandboxId: string): string {
    return join(this.dir, `${sandboxId}.log`);
  }

  /** Keeps a copy of a sandbox's log before the sandbox's directory goes. */
  async keep(sandboxId: string, livePath: string): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    await copyFile(livePath, this.pathOf(sandboxId)).catch((error: unknown) => {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    });
  }

  /** Removes logs last written before `cutoffMs`. */
  async prune(cutoffMs: number): Promise<void> {
    for (const name of await readdir(this.dir).catch(() => [] as string[])) {
      const path = join(this.dir, name);
      const info = await stat(path).catch(() => undefined);
      if (info && info.mtimeMs < cutoffMs) await unlink(path).catch(() => undefined);
    }
  }
}
