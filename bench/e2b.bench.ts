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

import { fileURLToPath } from 'node:url';

import { Sandbox } from '@e2b/code-interpreter';

import { BENCH_SUBSCRIPTION } from './pool-client.js';
import { benchArgs, fmt, machine, summary, writeReport } from './report.js';
import { startServerProcess, stopServerProcess } from './server-process.js';

const CONCURRENT = 16;
const READY = 20;
const MAX_SANDBOXES = 96;
const KEY = `sp_0123456789ab_${'E'.repeat(43)}`;
const AZURE_POOL = 'azure';
const TEMPLATE = 'benchtemplate';
const REPO = fileURLToPath(new URL('../', import.meta.url));

const args = benchArgs({ rounds: { full: 10, quick: 1 }, sequential: { full: 60, quick: 3 } });

const server = await startServerProcess({
  label: 'e2b',
  command: [`${REPO}packages/server/dist/src/main.js`, 'serve'],
  block: 0,
  key: KEY,
  maxSandboxes: MAX_SANDBOXES,
  env: {
    SANDPOOL_TLS: 'off',
    SANDPOOL_DEFAULT_SUBSCRIPTION: BENCH_SUBSCRIPTION,
    SANDPOOL_E2B_TEMPLATES: '[]',
  },
});
const { client } = server;
const url = client.url;

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
  const templateUrl = client.armUrl(TEMPLATE, 'e2b');
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

  const warmBoth = () =>
    Promise.all([
      client.waitForReady(client.armUrl(AZURE_POOL), READY),
      client.waitForReady(templateUrl, READY),
    ]);

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
  await stopServerProcess(server);
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
