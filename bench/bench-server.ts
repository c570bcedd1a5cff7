/**
 * A real server for a benchmark, in this process: its own home, run directory and id range on this
 * host, an API key the benchmark knows, and no limits that would measure themselves instead of the
 * server (`--default-pool` off, CPU overcommit and rate limits lifted).
 */

import { mkdtempSync } from 'node:fs';

import pino from 'pino';

import { poolId } from '../packages/server/src/arm-id.js';
import { loadConfig, type Config } from '../packages/server/src/config.js';
import { startServer, type RunningServer } from '../packages/server/src/server.js';
import { config as hostConfig, testIdBase } from '../packages/server/test/isolated-driver.js';
import { BENCH_SUBSCRIPTION, PoolClient } from './pool-client.js';

export interface BenchServer {
  config: Config;
  server: RunningServer;
  client: PoolClient;
}

export async function startBenchServer(options: {
  /** Names its home and run directory. */
  name: string;
  key: string;
  maxSandboxes: number;
  /** Its block of host ids, for servers that run side by side (see testIdBase). */
  block?: number;
  cgroupParent?: string;
  env?: Record<string, string>;
}): Promise<BenchServer> {
  const env: Record<string, string> = {
    SANDPOOL_HOME: mkdtempSync(`/var/tmp/sandpool-bench-${options.name}-`),
    SANDPOOL_RUN_DIR: `/run/sandpool-bench-${options.name}-${process.pid}`,
    SANDPOOL_CGROUP_PARENT: options.cgroupParent ?? 'sandpool-test',
    SANDPOOL_ID_BASE: String(testIdBase(options.maxSandboxes, options.block)),
    SANDPOOL_MAX_SANDBOXES: String(options.maxSandboxes),
    SANDPOOL_PYTHON_ROOTFS: hostConfig.paths.pythonRootfs,
    SANDPOOL_NODE_ROOTFS: hostConfig.paths.nodeRootfs,
    // The pools here hold more sandboxes than the default CPU overcommit admits on a small machine.
    SANDPOOL_NODE_CPU: '1000',
    SANDPOOL_PORT: '0',
    SANDPOOL_TLS: 'off',
    SANDPOOL_BOOTSTRAP_API_KEY: options.key,
    // It measures the server's speed, not its limits: one identifier takes thousands of requests here.
    SANDPOOL_RATE_LIMIT_PER_PRINCIPAL: '0',
    SANDPOOL_RATE_LIMIT_PER_IDENTIFIER: '0',
    ...options.env,
  };
  const config = loadConfig({ argv: ['--default-pool', ''], lookupEnv: (name) => env[name] });
  const server = await startServer(config, { logger: pino({ level: 'warn' }) });
  return { config, server, client: new PoolClient(server.url, options.key) };
}

/** Waits until the pool's warm set holds `ready` sandboxes and starts no more (not measured). */
export async function warmPool(server: RunningServer, name: string, ready: number): Promise<void> {
  const id = poolId(BENCH_SUBSCRIPTION, 'bench', name);
  for (;;) {
    const status = server.pools.manager(id)?.status();
    if (status && status.ready >= ready && status.starting === 0) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
