/**
 * @module sandbox/oci/monitor
 * conmon, the per-sandbox monitor: started once per sandbox, it runs `<runtime> create`, stays the
 * parent of the sandbox's init across server restarts, and writes the init's exit status. This file
 * starts it, reads the pids it leaves behind, and turns an exit status into how the sandbox ended.
 */

import { open, readFile } from 'node:fs/promises';
import { constants as osConstants } from 'node:os';
import { join } from 'node:path';

import type { CommandRunner } from '../command.js';
import type { ExitCause } from '../driver.js';

const CONSOLE_LOG_MAX_BYTES = 1024 * 1024;
const SIGKILL_EXIT = 128 + osConstants.signals.SIGKILL;
/** How often the sandbox's files and processes are polled while something is awaited of them. */
export const WAIT_STEP_MS = 5;
const EXIT_WAIT_MS = 2000;
const SYNC_MESSAGE = /\{[^}]*\}/;

export interface RuntimeCommand {
  path: string;
  /** Global flags placed before the runtime's subcommand. */
  args: string[];
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** A positive pid from a pid file, or undefined when the file is missing or holds none. */
export async function readPidFile(path: string): Promise<number | undefined> {
  const text = await readFile(path, 'utf8').catch(() => '');
  const pid = Number.parseInt(text, 10);
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

/**
 * conmon answers on its sync pipe with `{"data": <init pid>}` once the runtime has created the
 * container, or a negative value and a message when it could not. It keeps the pipe open afterwards,
 * so the first complete message is the answer.
 */
function readSyncMessage(pipe: NodeJS.ReadableStream): Promise<string> {
  return new Promise((resolve) => {
    let received = '';
    const finish = () => {
      pipe.removeAllListeners('data');
      (pipe as NodeJS.ReadableStream & { destroy(): void }).destroy();
      resolve(SYNC_MESSAGE.exec(received)?.[0] ?? '');
    };
    pipe.on('data', (chunk: Buffer) => {
      received += chunk.toString();
      if (SYNC_MESSAGE.test(received)) finish();
    });
    pipe.on('end', finish);
    pipe.on('error', finish);
  });
}

/** Starts conmon for the sandbox in `dir`, which runs `<runtime> create` and stays behind as its monitor. */
export async function launchMonitor(
  run: CommandRunner,
  conmonPath: string,
  id: string,
  dir: string,
  runtime: RuntimeCommand,
): Promise<void> {
  const args = [
    '--api-version', '1',
    '-c', id, '-u', id, '-n', id,
    '-r', runtime.path,
    ...runtime.args.flatMap((a) => ['--runtime-arg', a]),
    '-b', join(dir, 'bundle'),
    '-p', join(dir, 'init.pid'),
    '-P', join(dir, 'conmon.pid'),
    '--exit-dir', join(dir, 'exit'),
    '-0', join(dir, 'persist'),
    '--socket-dir-path', join(dir, 'attach'),
    '-l', `k8s-file:${join(dir, 'console.log')}`,
    '--log-size-max', String(CONSOLE_LOG_MAX_BYTES),
    '--log-level', 'error',
    '--no-sync-log',
  ]; // prettier-ignore
  const log = await open(join(dir, 'conmon.log'), 'a');
  let report: Promise<string> = Promise.resolve('');
  try {
    const result = await run(conmonPath, args, {
      // conmon writes files such as `oom` into its working directory: the sandbox's own.
      cwd: dir,
      logFd: log.fd,
      extraPipes: 1,
      env: { ...process.env, _OCI_SYNCPIPE: '3' },
      onPipes: ([syncPipe]) => {
        if (syncPipe) report = readSyncMessage(syncPipe);
      },
    });
    if (result.code !== 0) throw new Error(`conmon exited with ${String(result.code)}`);
  } finally {
    await log.close();
  }
  const message = await report;
  const parsed = message ? (JSON.parse(message) as { data?: number; message?: string }) : {};
  if (!parsed.data || parsed.data < 0) {
    const conmonLog = await readFile(join(dir, 'conmon.log'), 'utf8').catch(() => '');
    throw new Error(parsed.message ?? (conmonLog.trim() || 'conmon reported no container pid'));
  }
}

async function exitCode(id: string, dir: string): Promise<number | undefined> {
  const text = await readFile(join(dir, 'exit', id), 'utf8').catch(() => undefined);
  return text === undefined ? undefined : Number.parseInt(text, 10);
}

/**
 * The exit status once the sandbox's monitor (conmon, or the zygote it was forked from, by the pid
 * in `monitorPidFile`) has written it, a moment after reaping the init. Undefined if the monitor is
 * gone without writing one, or takes longer than the wait.
 */
export async function awaitExitCode(
  id: string,
  dir: string,
  monitorPidFile = 'conmon.pid',
): Promise<number | undefined> {
  const monitor = await readPidFile(join(dir, monitorPidFile));
  for (let waited = 0; ; waited += WAIT_STEP_MS) {
    const code = await exitCode(id, dir);
    if (code !== undefined || !monitor || !isAlive(monitor) || waited >= EXIT_WAIT_MS) return code;
    await sleep(WAIT_STEP_MS);
  }
}

export function signalName(exitCode: number): string | null {
  if (exitCode <= 128) return null;
  const entry = Object.entries(osConstants.signals).find(([, n]) => n === exitCode - 128);
  return entry ? entry[0] : null;
}

/** What the cgroup tells of the kernel's OOM killer after the init ended. */
export interface OomEvidence {
  /** Processes the OOM killer ended in the cgroup; 0 when the counter cannot be read. */
  kills: number;
  /** conmon saw the cgroup under OOM (it also sees an ancestor's OOM). */
  notified: boolean;
  /** The cgroup's memory reached its own limit; undefined when that cannot be read. */
  ownLimitReached: boolean | undefined;
}

/**
 * The ways an init can end, from its exit status and the OOM evidence. A kill in a cgroup that
 * never reached its own limit was the host's doing: the sandboxes together reached their parent's.
 */
export function classifyExit(exitCode: number, oom: OomEvidence): ExitCause {
  const ownLimitReached = oom.ownLimitReached ?? true;
  if (oom.kills > 0 && !ownLimitReached) return 'hostOom';
  if (oom.kills > 0 || (oom.notified && ownLimitReached)) return 'oom';
  if (exitCode === 0) return 'exited';
  if (exitCode === SIGKILL_EXIT) return 'killed';
  return 'crashed';
}
