/**
 * Server benchmarks (issue: session pools). Not a test: it measures over HTTP with auth on loopback,
 * prints a Markdown table and keeps it in bench/results/. Run as root after scripts/setup.sh:
 *
 *   node --import tsx bench/server.bench.ts [--quick] [--sequential 60] [--rounds 10] [--warm 1000] [--seconds 10]
 *     [--jupyter 10] [--sessions 100] [--streamed 20]
 *
 * - new identifier → first result of `print(1)`, warm pool, one client at a time and 16 at once;
 *   the same for a NodeLTS pool's `console.log(1)`;
 * - `print(1)` on an existing session;
 * - sustained trivial executions per second across 100 sessions;
 * - a streamed 2-second run (`Accept: text/event-stream`): its first stdout event, and its end;
 * - beside them, the baseline a self-hoster would otherwise run: a Jupyter kernel on the host driven
 *   by jupyter_client (Debian's python3-jupyter-client and python3-ipykernel), no sandbox at all.
 */

import { spawnSync } from 'node:child_process';

import { removeServerState } from '../packages/server/test/server-harness.js';
import { startBenchServer, warmPool } from './bench-server.js';
import { benchArgs, fmt, machine, summary, writeReport } from './report.js';

const args = benchArgs({
  sequential: { full: 60, quick: 5 },
  rounds: { full: 10, quick: 2 },
  warm: { full: 1000, quick: 50 },
  seconds: { full: 10, quick: 1 },
  jupyter: { full: 10, quick: 1 },
  sessions: { full: 100, quick: 8 },
  streamed: { full: 20, quick: 2 },
});
const CONCURRENT = 16;
const LOAD_SESSIONS = args.sessions;
const LOAD_CLIENTS = 32;
const KEY = `sp_0123456789ab_${'B'.repeat(43)}`;
const MAX_SANDBOXES = 160;

const { config, server, client } = await startBenchServer({
  name: 'server',
  key: KEY,
  maxSandboxes: MAX_SANDBOXES,
});

async function createPool(
  name: string,
  max: number,
  ready: number,
  containerType: 'PythonLTS' | 'NodeLTS' = 'PythonLTS',
): Promise<void> {
  await client.createPool(name, max, ready, { containerType });
  await warmPool(server, name, ready);
}

/** The code that prints 1 in each pool this benchmark makes. */
const PRINT_ONE: Record<string, string> = { nodealloc: 'console.log(1)' };

/** `print(1)` (or the pool's own way to print 1) for an identifier; the round trip in milliseconds. */
const printOne = async (pool: string, identifier: string) =>
  (await client.printOne(pool, identifier, PRINT_ONE[pool])).ms;
const endSession = (pool: string, identifier: string) => client.endSession(pool, identifier);

let counter = 0;
const newIdentifier = () => `bench-${process.pid}-${counter++}`;

async function newIdentifierSequential(pool: string, runs: number): Promise<number[]> {
  const samples: number[] = [];
  for (let i = 0; i < runs; i++) {
    await warmPool(server, pool, CONCURRENT);
    const identifier = newIdentifier();
    samples.push(await printOne(pool, identifier));
    await endSession(pool, identifier);
  }
  return samples;
}

async function newIdentifierConcurrent(pool: string, rounds: number): Promise<number[]> {
  const samples: number[] = [];
  for (let round = 0; round < rounds; round++) {
    await warmPool(server, pool, CONCURRENT);
    const identifiers = Array.from({ length: CONCURRENT }, newIdentifier);
    samples.push(...(await Promise.all(identifiers.map((id) => printOne(pool, id)))));
    await Promise.all(identifiers.map((id) => endSession(pool, id)));
  }
  return samples;
}

async function warmExecutions(runs: number): Promise<number[]> {
  const identifier = newIdentifier();
  await printOne('alloc', identifier);
  const samples: number[] = [];
  for (let i = 0; i < runs; i++) samples.push(await printOne('alloc', identifier));
  await endSession('alloc', identifier);
  return samples;
}

/** Executions per second with LOAD_CLIENTS clients over LOAD_SESSIONS live sessions. */
async function throughput(seconds: number): Promise<{ perSecond: number; latency: number[] }> {
  await createPool('load', LOAD_SESSIONS, LOAD_SESSIONS);
  const identifiers = Array.from({ length: LOAD_SESSIONS }, newIdentifier);
  await Promise.all(identifiers.map((id) => printOne('load', id)));
  const latency: number[] = [];
  const deadline = performance.now() + seconds * 1000;
  const began = performance.now();
  await Promise.all(
    Array.from({ length: LOAD_CLIENTS }, async (_, client) => {
      for (let i = client; performance.now() < deadline; i += LOAD_CLIENTS) {
        latency.push(await printOne('load', identifiers[i % LOAD_SESSIONS]!));
      }
    }),
  );
  return { perSecond: latency.length / ((performance.now() - began) / 1000), latency };
}

/** A run that prints, works two seconds, and prints again, streamed: its first output and its end. */
async function streamedRuns(runs: number): Promise<{ firstOutput: number[]; end: number[] }> {
  const identifier = newIdentifier();
  await printOne('alloc', identifier);
  const firstOutput: number[] = [];
  const end: number[] = [];
  for (let i = 0; i < runs; i++) {
    const run = await client.streamed(
      'alloc',
      identifier,
      'import time\nprint("start")\ntime.sleep(2)\nprint("end")',
    );
    firstOutput.push(run.firstOutput);
    end.push(run.end);
  }
  await endSession('alloc', identifier);
  return { firstOutput, end };
}

function jupyterBaseline(coldRuns: number, warmRuns: number): { cold: number[]; warm: number[] } {
  const run = spawnSync(
    '/usr/bin/python3',
    [new URL('./jupyter-baseline.py', import.meta.url).pathname, String(coldRuns), String(warmRuns)],
    {
      encoding: 'utf8',
      env: { ...process.env, PYDEVD_DISABLE_FILE_VALIDATION: '1' },
      stdio: ['ignore', 'pipe', 'ignore'],
    },
  );
  if (run.status !== 0) throw new Error(`jupyter baseline failed with ${run.status}`);
  return JSON.parse(run.stdout) as { cold: number[]; warm: number[] };
}

async function main(): Promise<void> {
  const host = machine();
  console.error(`machine: ${host}`);
  const began = performance.now();
  const phase = (what: string) =>
    console.error(`[${((performance.now() - began) / 1000).toFixed(1)} s] ${what}`);
  await createPool('alloc', 200, 20);
  phase('new identifier, one client…');
  const sequential = summary(await newIdentifierSequential('alloc', args.sequential));
  phase(`new identifier, ${CONCURRENT} clients…`);
  const concurrent = summary(await newIdentifierConcurrent('alloc', args.rounds));
  phase('NodeLTS: new identifier, one client, then 16…');
  await createPool('nodealloc', 40, CONCURRENT, 'NodeLTS');
  const nodeSequential = summary(await newIdentifierSequential('nodealloc', args.sequential));
  const nodeConcurrent = summary(await newIdentifierConcurrent('nodealloc', args.rounds));
  phase('existing session…');
  const existing = summary(await warmExecutions(args.warm));
  phase(`throughput over ${LOAD_SESSIONS} sessions…`);
  const load = await throughput(args.seconds);
  const loadLatency = summary(load.latency);
  phase('streamed runs…');
  const streamed = await streamedRuns(args.streamed);
  const streamedFirst = summary(streamed.firstOutput);
  const streamedEnd = summary(streamed.end);
  phase('Jupyter baseline…');
  const jupyter = jupyterBaseline(args.jupyter, args.warm);
  const jupyterCold = summary(jupyter.cold);
  const jupyterWarm = summary(jupyter.warm);

  const table = [
    `Server benchmark, ${new Date().toISOString().slice(0, 10)}. Machine: ${host}.`,
    'HTTP/1.1 on loopback with an API key, PythonLTS and NodeLTS sessions of 0.25 CPU and 512 MiB under runc; the Jupyter baseline runs ipykernel directly on the host (no isolation).',
    '',
    '| measurement | n | p50 | p99 | target | Jupyter baseline (p50 / p99) |',
    '|---|---|---|---|---|---|',
    `| new identifier → result of \`print(1)\`, warm pool, 1 client | ${sequential.n} | ${fmt(sequential.p50)} ms | ${fmt(sequential.p99)} ms | p50 ≤ 15, p99 ≤ 50 ms | start kernel → result: ${fmt(jupyterCold.p50)} / ${fmt(jupyterCold.p99)} ms |`,
    `| same, ${CONCURRENT} clients at once | ${concurrent.n} | ${fmt(concurrent.p50)} ms | ${fmt(concurrent.p99)} ms | p99 ≤ 100 ms | — |`,
    `| NodeLTS: new identifier → result of \`console.log(1)\`, warm pool, 1 client | ${nodeSequential.n} | ${fmt(nodeSequential.p50)} ms | ${fmt(nodeSequential.p99)} ms | as PythonLTS | — |`,
    `| NodeLTS: same, ${CONCURRENT} clients at once | ${nodeConcurrent.n} | ${fmt(nodeConcurrent.p50)} ms | ${fmt(nodeConcurrent.p99)} ms | as PythonLTS | — |`,
    `| \`print(1)\` on an existing session | ${existing.n} | ${fmt(existing.p50)} ms | ${fmt(existing.p99)} ms | p50 ≤ 3 ms | ${fmt(jupyterWarm.p50)} / ${fmt(jupyterWarm.p99)} ms |`,
    `| sustained: ${LOAD_CLIENTS} clients over ${LOAD_SESSIONS} sessions for ${args.seconds} s | ${loadLatency.n} | ${fmt(loadLatency.p50)} ms | ${fmt(loadLatency.p99)} ms | ≥ 500 executions/s | — |`,
    `| streamed 2-second run: first stdout event (the result came at ${fmt(streamedEnd.p50)} ms p50) | ${streamedFirst.n} | ${fmt(streamedFirst.p50)} ms | ${fmt(streamedFirst.p99)} ms | before the run ends | — |`,
    '',
    `Sustained throughput: **${Math.round(load.perSecond)} executions/s**.`,
  ].join('\n');
  writeReport('server', table, args.quick);
}

try {
  await main();
} finally {
  client.close();
  await server.close();
  await removeServerState(config);
}
