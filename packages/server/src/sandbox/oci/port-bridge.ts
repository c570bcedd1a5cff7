/**
 * @module sandbox/oci/port-bridge
 * Host unix sockets bridged to TCP ports on a sandbox's loopback: socat enters only the sandbox's
 * network namespace, as the sandbox's own unprivileged host user, so a bridge can do no more than
 * the sandbox itself. The sandbox needs no network interface for the session proxy to reach it.
 * Bridges live in `<sandbox dir>/ports/` as `<port>.sock` and `<port>.pid`.
 */

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import { AppError, ErrorCode } from '../../errors.js';
import { WAIT_STEP_MS, isAlive, readPidFile, sleep } from './monitor.js';

const BRIDGE_READY_MS = 3000;
/** `st` of a listening socket in /proc/<pid>/net/tcp{,6}. */
const TCP_LISTEN = '0A';

export interface BridgeTarget {
  id: string;
  /** The sandbox's state directory. */
  dir: string;
  /** The sandbox's init, whose network namespace the bridge enters. */
  pid: number;
  user: { uid: number; gid: number };
}

/** The socket bridged to `port`, opened now unless a live bridge already serves it. */
export async function openBridge(socatPath: string, target: BridgeTarget, port: number): Promise<string> {
  const ports = join(target.dir, 'ports');
  const socket = join(ports, `${port}.sock`);
  const bridge = await readPidFile(join(ports, `${port}.pid`));
  if (bridge !== undefined && isAlive(bridge) && existsSync(socket)) return socket;
  await rm(socket, { force: true });
  // fork serves each connection in a child of its own.
  const child = spawn(
    'nsenter',
    [
      `--net=/proc/${target.pid}/ns/net`,
      '--setgid', String(target.user.gid),
      '--setuid', String(target.user.uid),
      '--',
      socatPath,
      `UNIX-LISTEN:${socket},fork,mode=0600`,
      `TCP:127.0.0.1:${port},nodelay`,
    ],
    { detached: true, stdio: 'ignore' },
  ); // prettier-ignore
  child.unref();
  if (child.pid === undefined) {
    throw new AppError(ErrorCode.SandboxRuntimeError, `cannot start socat for ${target.id}`);
  }
  await writeFile(join(ports, `${port}.pid`), String(child.pid));
  for (let waited = 0; !existsSync(socket); waited += WAIT_STEP_MS) {
    if (waited >= BRIDGE_READY_MS || !isAlive(child.pid)) {
      throw new AppError(
        ErrorCode.SandboxRuntimeError,
        `sandbox ${target.id}: the bridge to port ${port} did not open`,
      );
    }
    await sleep(WAIT_STEP_MS);
  }
  return socket;
}

/** Whether a process of the sandbox whose init is `pid` listens on TCP `port`. */
export async function isListening(pid: number, port: number): Promise<boolean> {
  const tables = await Promise.all(
    ['tcp', 'tcp6'].map((table) => readFile(`/proc/${pid}/net/${table}`, 'utf8').catch(() => '')),
  );
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  return tables.some((table) =>
    table.split('\n').some((line) => {
      const [, local = '', , state] = line.trim().split(/\s+/);
      return state === TCP_LISTEN && local.endsWith(`:${hexPort}`);
    }),
  );
}

/** Kills every bridge of the sandbox in `dir`, with the per-connection children each one forked. */
export async function closeBridges(dir: string): Promise<void> {
  const ports = join(dir, 'ports');
  const files = await readdir(ports).catch(() => [] as string[]);
  for (const file of files.filter((f) => f.endsWith('.pid'))) {
    const pid = await readPidFile(join(ports, file));
    if (pid === undefined) continue;
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
}
