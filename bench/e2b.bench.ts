/**
 * E2B's SDK beside Azure's API on the same server (issue 31): a new sandbox's first result through
 * `Sandbox.create` → `runCode('print(1)')` with the real `@e2b/code-interpreter`, and a new
 * identifier's first result through Azure's executions API, in one run, taking turns. One
 * `sandpool serve` process (compiled, plain HTTP on loopback) with two PythonLTS pools of the same
 * size: an E2B template (a pool of the `e2b` resource group) and an Azure pool, each with a warm set.
 * Not a test: it prints a Markdown table and keeps it in bench/results/.
 *
 *   node --import tsx bench/e2b.bench.ts [--quick] [--rounds 10] [--sequential 60]
 *
 * Per path: 16 at once (`rounds` rounds, after one that warms both up and is not kept), and one
 * at a time; p50 and p99 from the call's start to its result. The SDK runs in this process, so its
 * own CPU time is in its numbers, as it is in a user's. For E2B, `Sandbox.create` alone too. The sandbox or session is ended after each
 * sample, outside the timing, and the warm set refilled before the next.
 */

import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

import { Sandbox } from '@e2b/code-interpreter';

import { config as hostConfig, testIdBase } from '../packages/server/test/isolated-driver.js';
import { removeServerState, testConfig } from '../packages/server/test/server-harness.js';
import { BENCH_SUBSCRIPTION, PoolClient } from './pool-client.js';
import { benchArgs, fmt, machine, summary, writeReport } from './report.js';

const CONCURRENT = 16;
const READY = 20;
const MAX_SANDBOXES = 96;
const KEY = `sp_0123456789ab_${'E'.repeat(43)}`;
const AZURE_POOL = 'azure';
const TEMPLATE = 'benchtemplate';
const REPO = fileURLToPath(new URL('../', import.meta.url));

const args = benchArgs({ rounds: { full: 10, quick: 1 }, sequential: { full: 60, quick: 3 } });

const home = mkdtempSync('/var/tmp/sandpool-bench-e2b-');
const runDir = `/run/sandpool-bench-e2b-${process.pid}`;
const server = spawn(
  process.execPath,
  [`${REPO}packages/server/dist/src/main.js`, 'serve', '--default-pool', ''],
  {
    env: {
      ...process.env,
      SANDPOOL_HOME: home,
      SANDPOOL_RUN_DIR: runDir,
      SANDPOOL_CGROUP_PARENT: 'sandpool-test',
      SANDPOOL_ID_BASE: String(testIdBase(MAX_SANDBOXES, 0)),
      SANDPOOL_MAX_SANDBOXES: String(MAX_SANDBOXES),
      SANDPOOL_PYTHON_ROOTFS: hostConfig.paths.pythonRootfs,
      SANDPOOL_NODE_ROOTFS: hostConfig.paths.nodeRootfs,
      SANDPOOL_NODE_CPU: '1000',
      SANDPOOL_HOST: '127.0.0.1',
      SANDPOOL_PORT: '0',
      SANDPOOL_TLS: 'off',
      SANDPOOL_LOG_LEVEL: 'warn',
      SANDPOOL_BOOTSTRAP_API_KEY: KEY,
      SANDPOOL_RATE_LIMIT_PER_PRINCIPAL: '0',
      SANDPOOL_RATE_LIMIT_PER_IDENTIFIER: '0',
      SANDPOOL_DEFAULT_SUBSCRIPTION: BENCH_SUBSCRIPTION,
      SANDPOOL_E2B_TEMPLATES: '[]',
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  },
);
const url = await new Promise<string>((resolve, reject) => {
  server.once('exit', (code) =>
    reject(new Error(`the server exited with ${String(code)} before it listened`)),
  );
  createInterface({ input: server.stderr }).on('line', (line) => {
    const listening = /^Sandpool is listening on (\S+)$/.exec(line);
    if (listening) resolve(listening[1]!);
  });
});
const client = new PoolClient(url, KEY);

interface Samples {
  e2bConcurrent: number[];
  e2bSequential: number[];
  e2bCreate: number[];
  azureConcurrent: number[];
  azureSequential: number[];
}
const samples: Samples = {
  e2bConcurrent: [],
  e2bSequential: [],
  e2bCreate: [],
  azureConcurrent: [],
  azureSequential: [],
};

try {
  await client.createPool(AZURE_POOL, MAX_SANDBOXES / 2, READY);
  const templateUrl = client.armUrl(TEMPLATE).replace('/resourceGroups/bench/', '/resourceGroups/e2b/');
  const body = {
    location: 'local',
    properties: {
      containerType: 'PythonLTS',
      scaleConfiguration: { maxConcurrentSessions: MAX_SANDBOXES / 2, readySessionInstances: READY },
    },
  };
  const template = await client.call('PUT', templateUrl, JSON.stringify(body));
  if (template.status !== 201) throw new Error(`create ${TEMPLATE}: ${template.status} ${template.text}`);
  const key = await client.call(
    'POST',
    `${url}/sandpool/apiKeys`,
    JSON.stringify({ name: 'bench', roles: ['SessionExecutor', 'Reader'] }),
  );
  const e2bKey = (JSON.parse(key.text) as { e2bKey: string }).e2bKey;
  const e2b = { apiKey: e2bKey, apiUrl: url, sandboxUrl: url, domain: 'sandpool.bench' };

  /** Waits until a pool holds its ready sandboxes and starts no more. */
  const warm = async (poolUrl: string) => {
    for (;;) {
      const pool = JSON.parse((await client.call('GET', poolUrl)).text) as {
        properties?: { sessionStatus?: { readySessionCount?: number; startingSessionCount?: number } };
      };
      const status = pool.properties?.sessionStatus;
      if ((status?.readySessionCount ?? 0) >= READY && status?.startingSessionCount === 0) return;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  };
  const warmBoth = () => Promise.all([warm(client.armUrl(AZURE_POOL)), warm(templateUrl)]);

  /** A new sandbox's first result through E2B's SDK; the sandbox, to kill outside the timing. */
  const e2bFirst = async (): Promise<{ total: number; create: number; sandbox: Sandbox }> => {
    const start = performance.now();
    const sandbox = await Sandbox.create(TEMPLATE, e2b);
    const created = performance.now();
    const run = await sandbox.runCode('print(1)');
    if (run.logs.stdout.join('') !== '1\n') throw new Error(`print(1) printed ${JSON.stringify(run.logs)}`);
    return { total: performance.now() - start, create: created - start, sandbox };
  };
  let counter = 0;
  const newIdentifier = () => `e2b-bench-${process.pid}-${counter++}`;

  // Round 0 warms both paths (the server's and the SDK's first calls compile their code) and is not kept.
  for (let round = 0; round <= args.rounds; round++) {
    const kept = round > 0;
    await warmBoth();
    const made = await Promise.all(Array.from({ length: CONCURRENT }, e2bFirst));
    if (kept) samples.e2bConcurrent.push(...made.map((m) => m.total));
    await Promise.all(made.map((m) => m.sandbox.kill()));
    await warmBoth();
    const identifiers = Array.from({ length: CONCURRENT }, newIdentifier);
    const azure = await Promise.all(
      identifiers.map(async (id) => (await client.printOne(AZURE_POOL, id)).ms),
    );
    if (kept) samples.azureConcurrent.push(...azure);
    await Promise.all(identifiers.map((id) => client.endSession(AZURE_POOL, id)));
  }
  for (let i = 0; i < args.sequential; i++) {
    await warmBoth();
    const one = await e2bFirst();
    samples.e2bSequential.push(one.total);
    samples.e2bCreate.push(one.create);
    await one.sandbox.kill();
    const id = newIdentifier();
    samples.azureSequential.push((await client.printOne(AZURE_POOL, id)).ms);
    await client.endSession(AZURE_POOL, id);
  }
} finally {
  server.kill('SIGTERM');
  await new Promise((resolve) => server.once('exit', resolve));
  await removeServerState(
    testConfig({ SANDPOOL_HOME: home, SANDPOOL_RUN_DIR: runDir, SANDPOOL_CGROUP_PARENT: 'sandpool-test' }),
  );
  rmSync(home, { recursive: true, force: true });
  client.close();
}

const ms = (values: number[]) => {
  const s = summary(values);
  return `${fmt(s.p50)} / ${fmt(s.p99)} ms`;
};
const table = [
  `E2B beside Azure, ${new Date().toISOString().slice(0, 10)}: ${machine()}; one server (compiled, plain HTTP on loopback), two PythonLTS pools of ${MAX_SANDBOXES / 2}, ${READY} ready each; @e2b/code-interpreter against Azure's executions API, taking turns; p50 / p99.`,
  '',
  '| new sandbox → first `print(1)` result | E2B SDK (`Sandbox.create` → `runCode`) | Azure API (new identifier → execution) |',
  '|---|---|---|',
  `| ${CONCURRENT} at once (${args.rounds} rounds) | ${ms(samples.e2bConcurrent)} | ${ms(samples.azureConcurrent)} |`,
  `| one at a time (${args.sequential}) | ${ms(samples.e2bSequential)} | ${ms(samples.azureSequential)} |`,
  `| of which \`Sandbox.create\`, one at a time | ${ms(samples.e2bCreate)} | — |`,
].join('\n');
writeReport('e2b', table, args.quick);
