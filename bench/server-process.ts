/**
 * A `sandpool serve` process for a benchmark that measures the server from outside (its own
 * process, as a deployment runs it): its own home, run directory and block of host ids, a known API
 * key, and no limits that would measure themselves (no default pool, CPU overcommit and rate limits
 * lifted). Stopping it removes what it leaves, as the tests remove theirs.
 */

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createInterface } from 'node:readline';

import { config as hostConfig, testIdBase } from '../packages/server/test/isolated-driver.js';
import { removeServerState, testConfig } from '../packages/server/test/server-harness.js';
import { PoolClient } from './pool-client.js';

export interface ServerProcess {
  label: string;
  process: ChildProcess;
  client: PoolClient;
  home: string;
  runDir: string;
}

export async function startServerProcess(options: {
  /** Names its home and run directory. */
  label: string;
  /** Node's arguments: the server's entry point and `serve`. */
  command: string[];
  /** Its block of host ids, for servers that run side by side (see testIdBase). */
  block: number;
  key: string;
  maxSandboxes: number;
  /** Settings beside the benchmark defaults (TLS is `auto` unless said). */
  env?: Record<string, string>;
}): Promise<ServerProcess> {
  const { label, key } = options;
  const home = mkdtempSync(`/var/tmp/sandpool-bench-${label}-`);
  const runDir = `/run/sandpool-bench-${label}-${process.pid}`;
  const env = {
    ...process.env,
    SANDPOOL_HOME: home,
    SANDPOOL_RUN_DIR: runDir,
    SANDPOOL_CGROUP_PARENT: 'sandpool-test',
    SANDPOOL_ID_BASE: String(testIdBase(options.maxSandboxes, options.block)),
    SANDPOOL_MAX_SANDBOXES: String(options.maxSandboxes),
    SANDPOOL_PYTHON_ROOTFS: hostConfig.paths.pythonRootfs,
    SANDPOOL_NODE_ROOTFS: hostConfig.paths.nodeRootfs,
    SANDPOOL_NODE_CPU: '1000',
    SANDPOOL_HOST: '127.0.0.1',
    SANDPOOL_PORT: '0',
    SANDPOOL_TLS: 'auto',
    SANDPOOL_LOG_LEVEL: 'warn',
    SANDPOOL_BOOTSTRAP_API_KEY: key,
    SANDPOOL_RATE_LIMIT_PER_PRINCIPAL: '0',
    SANDPOOL_RATE_LIMIT_PER_IDENTIFIER: '0',
    ...options.env,
  };
  const child = spawn(process.execPath, [...options.command, '--default-pool', ''], {
    env,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const url = await new Promise<string>((resolve, reject) => {
    child.once('exit', (code) =>
      reject(new Error(`${label} exited with ${String(code)} before it listened`)),
    );
    createInterface({ input: child.stderr }).on('line', (line) => {
      const listening = /^Sandpool is listening on (\S+)$/.exec(line);
      if (listening) resolve(listening[1]!);
    });
  });
  return { label, process: child, client: new PoolClient(url, key), home, runDir };
}

export async function stopServerProcess(server: ServerProcess): Promise<void> {
  server.process.kill('SIGTERM');
  await new Promise((resolve) => server.process.once('exit', resolve));
  // What a stopped server leaves running (its sandboxes) goes the way the tests remove theirs.
  await removeServerState(
    testConfig({
      SANDPOOL_HOME: server.home,
      SANDPOOL_RUN_DIR: server.runDir,
      SANDPOOL_CGROUP_PARENT: 'sandpool-test',
    }),
  );
  rmSync(server.home, { recursive: true, force: true });
  server.client.close();
}
