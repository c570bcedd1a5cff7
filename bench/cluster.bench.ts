/**
 * Cluster benchmark (issue: beyond one machine). Not a test: it measures over HTTP with auth on
 * loopback, prints a Markdown table and keeps it in bench/results/. Run as root after scripts/setup.sh:
 *
 *   node --import tsx bench/cluster.bench.ts [--quick] [--sequential 60] [--warm 1000] [--seconds 10] [--sessions 48]
 *
 * Three set-ups side by side, each `sandpool serve` as child processes (one event loop per node, as
 * in production): one node on the embedded SQLite store, one node on PostgreSQL, and three nodes
 * sharing PostgreSQL. For each:
 * - a new identifier's first result of `print(1)`, with ready sandboxes, requests spread over the nodes;
 * - `print(1)` on an existing session, sent to the node that holds it and to another node (the
 *   forwarding hop);
 * - executions per second with 32 clients over many sessions, requests spread over the nodes.
 * All nodes share this host's CPUs, so three nodes here measure the cluster's overheads, not its
 * added capacity.
 */

import { mkdtempSync, rmSync } from 'node:fs';

import { startChild, type Child } from '../packages/server/test/child-server.js';
import { config as hostConfig, testIdBase } from '../packages/server/test/isolated-driver.js';
import { startPostgres, type PostgresServer } from '../packages/server/test/postgres-server.js';
import { removeServerState, testConfig } from '../packages/server/test/server-harness.js';
import { PoolClient } from './pool-client.js';
import { benchArgs, fmt, machine, summary, writeReport } from './report.js';

const args = benchArgs({
  sequential: { full: 60, quick: 3 },
  warm: { full: 1000, quick: 20 },
  seconds: { full: 10, quick: 1 },
  sessions: { full: 48, quick: 6 },
});
const CLIENTS = 32;
const READY = 8;
const MAX_SANDBOXES = 64;
const KEY = `sp_0123456789ab_${'C'.repeat(43)}`;

interface SetUp {
  label: string;
  nodes: number;
  postgres: boolean;
}

const SET_UPS: SetUp[] = [
  { label: '1 node, SQLite', nodes: 1, postgres: false },
  { label: '1 node, PostgreSQL', nodes: 1, postgres: true },
  { label: '3 nodes, PostgreSQL', nodes: 3, postgres: true },
];

interface Running {
  children: Child[];
  envs: Record<string, string>[];
  clients: PoolClient[];
}

let database: PostgresServer | undefined;
const keys = mkdtempSync('/var/tmp/sandpool-bench-cluster-keys-');
let block = 0;

async function start(setUp: SetUp, index: number): Promise<Running> {
  const store = setUp.postgres ? await database!.createDatabase(`bench_${String(index)}`) : undefined;
  const running: Running = { children: [], envs: [], clients: [] };
  for (let n = 0; n < setUp.nodes; n++) {
    const home = mkdtempSync(`/var/tmp/sandpool-bench-cluster-${String(n)}-`);
    const env: Record<string, string> = {
      SANDPOOL_HOME: home,
      SANDPOOL_RUN_DIR: `/run/sandpool-bench-cluster-${String(process.pid)}-${String(block)}`,
      SANDPOOL_CGROUP_PARENT: 'sandpool-test',
      SANDPOOL_ID_BASE: String(testIdBase(MAX_SANDBOXES, block++)),
      SANDPOOL_MAX_SANDBOXES: String(MAX_SANDBOXES),
      SANDPOOL_PYTHON_ROOTFS: hostConfig.paths.pythonRootfs,
      SANDPOOL_HOST: '127.0.0.1',
      SANDPOOL_PORT: '0',
      SANDPOOL_TLS: 'off',
      SANDPOOL_BOOTSTRAP_API_KEY: KEY,
      SANDPOOL_LOG_LEVEL: 'warn',
      SANDPOOL_NODE_NAME: `node-${String(n)}`,
      SANDPOOL_NODE_LEASE_SECONDS: '3',
      // It measures speed, not limits: one identifier takes thousands of requests here.
      SANDPOOL_RATE_LIMIT_PER_PRINCIPAL: '0',
      SANDPOOL_RATE_LIMIT_PER_IDENTIFIER: '0',
      ...(store && { SANDPOOL_STORE: store, SANDPOOL_STORE_KEYS: `${keys}/store-${String(index)}.keys` }),
    };
    // One at a time: the first makes the keyring and the cluster's forwarding key.
    const child = await startChild(env);
    running.children.push(child);
    running.envs.push(env);
    running.clients.push(new PoolClient(child.url, KEY));
  }
  return running;
}

async function stop(running: Running): Promise<void> {
  for (const client of running.clients) client.close();
  await Promise.all(
    running.children.map(
      (child) =>
        new Promise((resolve) => {
          child.process.once('exit', resolve);
          child.process.kill('SIGTERM');
        }),
    ),
  );
  for (const env of running.envs) await removeServerState(testConfig(env));
}

/** The ready sandboxes of the pool across the nodes, each node answering for itself. */
async function readyTotal(running: Running): Promise<number> {
  let total = 0;
  for (const client of running.clients) {
    const answer = await client.call('GET', `${client.url}/sandpool/nodes`);
    const nodes = (JSON.parse(answer.text) as { value: { url: string; load: { ready: number } }[] }).value;
    total += nodes.find((node) => node.url === client.url)?.load.ready ?? 0;
  }
  return total;
}

async function untilReady(running: Running, ready: number): Promise<void> {
  while ((await readyTotal(running)) < ready) await new Promise((resolve) => setTimeout(resolve, 20));
}

let counter = 0;
const newIdentifier = () => `bench-${String(process.pid)}-${String(counter++)}`;

interface Measured {
  newIdentifier: number[];
  onHolder: number[];
  forwarded: number[];
  perSecond: number;
  loaded: number[];
}

async function measure(running: Running): Promise<Measured> {
  const { clients } = running;
  const at = (i: number) => clients[i % clients.length]!;
  await at(0).createPool('alloc', 200, READY);
  const newSamples: number[] = [];
  for (let i = 0; i < args.sequential; i++) {
    await untilReady(running, READY);
    const identifier = newIdentifier();
    newSamples.push((await at(i).printOne('alloc', identifier)).ms);
    await at(i).endSession('alloc', identifier);
  }

  const identifier = newIdentifier();
  const { node: holder } = await at(0).printOne('alloc', identifier);
  const holderIndex = Math.max(0, Number(holder.replace('node-', '')));
  const onHolder: number[] = [];
  const forwarded: number[] = [];
  for (let i = 0; i < args.warm; i++) {
    onHolder.push((await at(holderIndex).printOne('alloc', identifier)).ms);
    if (clients.length > 1) forwarded.push((await at(holderIndex + 1).printOne('alloc', identifier)).ms);
  }
  await at(0).endSession('alloc', identifier);

  await at(0).createPool('load', args.sessions, args.sessions);
  await untilReady(running, args.sessions);
  const identifiers = Array.from({ length: args.sessions }, newIdentifier);
  await Promise.all(identifiers.map((id, i) => at(i).printOne('load', id)));
  const loaded: number[] = [];
  const deadline = performance.now() + args.seconds * 1000;
  const began = performance.now();
  await Promise.all(
    Array.from({ length: CLIENTS }, async (_, client) => {
      for (let i = client; performance.now() < deadline; i += CLIENTS) {
        loaded.push((await at(client).printOne('load', identifiers[i % args.sessions]!)).ms);
      }
    }),
  );
  const perSecond = loaded.length / ((performance.now() - began) / 1000);
  return { newIdentifier: newSamples, onHolder, forwarded, perSecond, loaded };
}

const cell = (samples: number[]) => {
  if (samples.length === 0) return '—';
  const { p50, p99 } = summary(samples);
  return `${fmt(p50)} / ${fmt(p99)} ms`;
};

async function main(): Promise<void> {
  const host = machine();
  console.error(`machine: ${host}`);
  database = startPostgres();
  const results: Measured[] = [];
  for (const [index, setUp] of SET_UPS.entries()) {
    console.error(`${setUp.label}…`);
    const running = await start(setUp, index);
    try {
      results.push(await measure(running));
    } finally {
      await stop(running);
    }
  }
  const row = (what: string, value: (m: Measured) => string) =>
    `| ${what} | ${results.map(value).join(' | ')} |`;
  const forwardingCost = (m: Measured) =>
    m.forwarded.length === 0 ? '—' : `${fmt(summary(m.forwarded).p50 - summary(m.onHolder).p50)} ms`;
  const table = [
    `Cluster benchmark, ${new Date().toISOString().slice(0, 10)}. Machine: ${host}.`,
    'Each node a `sandpool serve` process on this host, HTTP/1.1 on loopback with an API key, PythonLTS sessions of 0.25 CPU and 512 MiB under runc; PostgreSQL 15 on a unix socket on the same host. Requests are spread round-robin over the nodes. Cells are p50 / p99.',
    '',
    `| measurement | ${SET_UPS.map((s) => s.label).join(' | ')} |`,
    `|---|${SET_UPS.map(() => '---|').join('')}`,
    row(`new identifier → result of \`print(1)\`, ${READY} ready (n = ${String(args.sequential)})`, (m) =>
      cell(m.newIdentifier),
    ),
    row(`\`print(1)\` on an existing session, sent to its node (n = ${String(args.warm)})`, (m) =>
      cell(m.onHolder),
    ),
    row('same, sent to another node (forwarded)', (m) => cell(m.forwarded)),
    row('forwarding cost (p50 difference)', forwardingCost),
    row(
      `${String(CLIENTS)} clients over ${String(args.sessions)} sessions for ${String(args.seconds)} s: executions/s`,
      (m) => String(Math.round(m.perSecond)),
    ),
    row('same: latency', (m) => cell(m.loaded)),
  ].join('\n');
  writeReport('cluster', table, args.quick);
}

try {
  await main();
} finally {
  database?.remove();
  rmSync(keys, { recursive: true, force: true });
}
