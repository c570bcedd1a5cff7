/**
 * `sandpool serve` as a child process, for tests that kill the server (SIGKILL) and start it again
 * on the same home, and for checking that nothing of a sandbox outlives it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, readdirSync, readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

import type { Config } from '../src/config.js';
import { OciDriver } from '../src/sandbox/oci/oci-driver.js';
import { mountsBelow } from './integration/harness.js';
import { ADMIN_KEY } from './server-harness.js';

const MAIN = fileURLToPath(new URL('../src/main.ts', import.meta.url));

export interface Child {
  process: ChildProcess;
  url: string;
}

/**
 * Starts `sandpool serve` as a child process and waits for its banner (on stderr, which it passes
 * on). Its JSON logs (stdout) are dropped; `SANDPOOL_TEST_CHILD_LOGS=<dir>` keeps each child's, at
 * info level, in a file there, for a failure that needs them.
 */
export async function startChild(env: Record<string, string>): Promise<Child> {
  const logDir = process.env.SANDPOOL_TEST_CHILD_LOGS;
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN, 'serve', '--default-pool', ''], {
    env: { ...process.env, ...env, ...(logDir && { SANDPOOL_LOG_LEVEL: 'info' }) },
    stdio: ['ignore', logDir ? 'pipe' : 'ignore', 'pipe'],
  });
  if (logDir && child.stdout)
    child.stdout.pipe(createWriteStream(`${logDir}/sandpool-${String(child.pid)}.log`));
  const lines = createInterface({ input: child.stderr! });
  const url = await new Promise<string>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`server exited with ${code} before it was ready`)));
    lines.on('line', (line) => {
      process.stderr.write(`${line}\n`);
      const listening = /^Sandpool is listening on (\S+)$/.exec(line);
      if (listening) resolve(listening[1]!);
    });
  });
  return { process: child, url };
}

export async function call(child: Child, method: string, path: string, body?: unknown) {
  const response = await fetch(`${child.url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${ADMIN_KEY}`,
      ...(body !== undefined && { 'content-type': 'application/json' }),
    },
    ...(body !== undefined && { body: JSON.stringify(body) }),
  });
  const text = await response.text();
  return {
    status: response.status,
    headers: response.headers,
    json: text ? (JSON.parse(text) as Record<string, any>) : {},
  };
}

/**
 * What of the server's sandboxes exists on the host, by sandbox id: runtime containers, state
 * directories, cgroups, mounts and monitor/bridge processes. A test compares it with the store.
 */
export async function sandboxesOnHost(config: Config): Promise<Record<string, string[]>> {
  const driver = OciDriver.fromConfig(config);
  const stateDir = config.paths.stateDir;
  const directories = existsSync(stateDir)
    ? readdirSync(stateDir, { withFileTypes: true })
        .filter((entry) => entry.isDirectory())
        .map((entry) => entry.name)
    : [];
  const mounts = mountsBelow(`${stateDir}/`).map(
    (target) => target.slice(stateDir.length + 1).split('/')[0]!,
  );
  // conmon and socat name their sandbox's directory in their arguments.
  const inState = new RegExp(`${stateDir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/([^/\\0]+)/`);
  const processes = readdirSync('/proc')
    .filter((pid) => /^\d+$/.test(pid))
    .flatMap((pid) => {
      try {
        const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
        const program = cmdline.split('\0')[0] ?? '';
        const id = /(conmon|socat)$/.test(program) ? inState.exec(cmdline)?.[1] : undefined;
        return id ? [id] : [];
      } catch {
        return [];
      }
    });
  const cgroups: string[] = [];
  for (const id of new Set([...directories, ...mounts])) {
    if ((await driver.leftoverCgroups(id)).length > 0) cgroups.push(id);
  }
  return {
    containers: (await driver.list()).map((s) => s.id).sort(),
    directories: [...new Set(directories)].sort(),
    mounts: [...new Set(mounts)].sort(),
    processes: [...new Set(processes)].sort(),
    cgroups: cgroups.sort(),
  };
}
