/**
 * @module sandbox/command
 * Runs host programs (runtimes, mount, conmon) with argv arrays and no shell, bounded in time and in
 * captured output. Drivers receive a {@link CommandRunner} so their logic can be tested without them.
 */

import { spawn } from 'node:child_process';

export interface CommandResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface CommandOptions {
  timeoutMs?: number;
  /** Working directory; the server's own by default. */
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /**
   * Sends stdout and stderr to this open file instead of capturing them, and resolves as soon as the
   * process exits: for programs that daemonize and leave children holding their stdio.
   */
  logFd?: number;
  /** Written to the child's stdin, which is then closed (no stdin without it). */
  input?: string;
  /** Extra file descriptors for the child beyond stdio, in order from fd 3. */
  extraPipes?: number;
  /** Called with the child's extra pipes (fd 3 onwards) right after spawn. */
  onPipes?: (pipes: NodeJS.ReadableStream[]) => void;
}

export type CommandRunner = (
  file: string,
  args: readonly string[],
  options?: CommandOptions,
) => Promise<CommandResult>;

const MAX_CAPTURE = 64 * 1024;
const DEFAULT_TIMEOUT_MS = 30_000;

export class CommandError extends Error {
  constructor(
    readonly file: string,
    readonly args: readonly string[],
    readonly result: CommandResult,
  ) {
    const why = result.signal ? `signal ${result.signal}` : `exit code ${String(result.code)}`;
    super(`${file} ${args.join(' ')} failed with ${why}: ${result.stderr.trim() || result.stdout.trim()}`);
  }
}

function capped(chunks: Buffer[], chunk: Buffer, size: { n: number }): void {
  if (size.n >= MAX_CAPTURE) return;
  chunks.push(chunk.subarray(0, MAX_CAPTURE - size.n));
  size.n += chunk.length;
}

/** Spawns `file` and resolves when it exits, whatever the exit code. */
export const runCommand: CommandRunner = (file, args, options = {}) =>
  new Promise((resolve, reject) => {
    const extra = Array.from({ length: options.extraPipes ?? 0 }, () => 'pipe' as const);
    const output = options.logFd ?? 'pipe';
    const child = spawn(file, args, {
      stdio: [options.input === undefined ? 'ignore' : 'pipe', output, output, ...extra],
      env: options.env ?? process.env,
      ...(options.cwd ? { cwd: options.cwd } : {}),
      timeout: options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
      killSignal: 'SIGKILL',
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    const outSize = { n: 0 };
    const errSize = { n: 0 };
    child.stdout?.on('data', (c: Buffer) => capped(out, c, outSize));
    child.stderr?.on('data', (c: Buffer) => capped(err, c, errSize));
    options.onPipes?.(child.stdio.slice(3) as NodeJS.ReadableStream[]);
    if (options.input !== undefined) child.stdin?.end(options.input);
    child.on('error', reject);
    const settle = (code: number | null, signal: NodeJS.Signals | null) =>
      resolve({ code, signal, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() });
    if (options.logFd === undefined) child.on('close', settle);
    else child.on('exit', settle);
  });

/** Runs a command and throws {@link CommandError} unless it exits 0. */
export async function runChecked(
  run: CommandRunner,
  file: string,
  args: readonly string[],
  options?: CommandOptions,
): Promise<CommandResult> {
  const result = await run(file, args, options);
  if (result.code !== 0) throw new CommandError(file, args, result);
  return result;
}
