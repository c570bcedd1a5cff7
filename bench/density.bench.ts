/**
 * Density and cold start (issue: density). Not a test: it measures over HTTP on loopback, prints a
 * Markdown table and keeps it in bench/results/. Run as root after scripts/setup.sh:
 *
 *   node --import tsx bench/density.bench.ts [--quick] [--sessions 50] [--cold 30] [--rounds 5] [--held 1500]
 *
 * Side by side, in one run, two servers on this host: today's path (every sandbox starts Python
 * under runc) and the zygote's (every sandbox is forked from a prepared interpreter). For each:
 * - `sessions` idle sessions of a plain pool, and of a data-science pool (numpy and pandas in its
 *   preload list) that each used pandas once: host memory per session from /proc/meminfo (what the
 *   host lost), from the sessions' own cgroups (what they are charged), and what the zygotes' cgroup
 *   holds for all of them (the shared, prepared state);
 * - a cold start (no ready sandbox) to the first result, for each pool;
 * - a new identifier's first result with 16 clients at once, from a warm pool;
 * - on the zygote's path, `held` data-science sessions at once on this one node (the 1,500),
 *   each having used pandas: whether every one still answers, and the host memory each costs. The
 *   runc path would need its per-session figure times `held`, more than this host has, and is not
 *   run. Both servers admit that many: `--memory-overcommit 40`, and no CPU reservation limit.
 */

import { existsSync, readFileSync, readdirSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';

import { poolId } from '../packages/server/src/arm-id.js';
import { removeServerState } from '../packages/server/test/server-harness.js';
import { startBenchServer, warmPool, type BenchServer } from './bench-server.js';
import { BENCH_SUBSCRIPTION } from './pool-client.js';
import { benchArgs, fmt, machine, summary, writeReport } from './report.js';

const args = benchArgs({
  sessions: { full: 50, quick: 3 },
  cold: { full: 30, quick: 2 },
  rounds: { full: 5, quick: 1 },
  held: { full: 1500, quick: 12 },
});
const CONCURRENT = 16;
const KEY = `sp_0123456789ab_${'D'.repeat(43)}`;
/** Room for every phase's sessions and ready sandboxes at once: the held phase keeps the others' ready sets. */
const MAX_SANDBOXES = 2 * args.sessions + 2 * CONCURRENT + args.held + 16;
/** Azure's cap on a pool's maxConcurrentSessions: `held` sessions spread over pools of this size. */
const POOL_MAX = 600;
/** Clients that start the held sessions, each one at a time. */
const HELD_CLIENTS = 3;
const MIB = 1024 ** 2;
const PRELOAD = ['numpy', 'pandas'];
const USE_PANDAS =
  'import numpy as np\nimport pandas as pd\nint(pd.DataFrame({"a": np.arange(1000)})["a"].sum())';

interface Path extends BenchServer {
  name: 'runc' | 'zygote';
  cgroupParent: string;
}

async function startPath(name: Path['name'], index: number): Promise<Path> {
  const cgroupParent = `sandpool-bench-density-${name}-${process.pid}`;
  const started = await startBenchServer({
    name: `density-${name}`,
    key: KEY,
    maxSandboxes: MAX_SANDBOXES,
    block: index,
    cgroupParent,
    // 1,500 sessions of 512 MiB: what the sandboxes may promise reaches 40 × their 23 GiB limit.
    env: { SANDPOOL_ZYGOTE: String(name === 'zygote'), SANDPOOL_MEMORY_OVERCOMMIT: '40' },
  });
  return { ...started, name, cgroupParent };
}

async function stopPath(path: Path): Promise<void> {
  await path.server.close();
  await removeServerState(path.config);
  await removeCgroupParent(path.cgroupParent);
}

/**
 * Removes the path's cgroup parent from every hierarchy, with the zygotes' cgroups in it: a zygote
 * exits once its server has gone and its sandboxes with it, a moment after the server closed.
 */
async function removeCgroupParent(parent: string): Promise<void> {
  const dirs = readdirSync('/sys/fs/cgroup').map((hierarchy) => join('/sys/fs/cgroup', hierarchy, parent));
  for (let tries = 0; tries < 100; tries++) {
    let left = 0;
    for (const dir of dirs) {
      if (!existsSync(dir)) continue;
      for (const entry of readdirSync(dir, { withFileTypes: true })) {
        if (entry.isDirectory()) rmdirQuietly(join(dir, entry.name));
      }
      rmdirQuietly(dir);
      if (existsSync(dir)) left++;
    }
    if (left === 0) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

function rmdirQuietly(dir: string): void {
  try {
    rmdirSync(dir);
  } catch {
    // Still in use; the next try takes it.
  }
}

/** What the host has given away: MemTotal less MemAvailable. */
function hostUsedBytes(): number {
  const meminfo = readFileSync('/proc/meminfo', 'utf8');
  const kib = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB$`, 'm').exec(meminfo)![1]) * 1024;
  return kib('MemTotal') - kib('MemAvailable');
}

/** Memory charged to each cgroup below the path's parent that `named` picks. */
function cgroupBytes(path: Path, named: (name: string) => boolean): number[] {
  const parent = join('/sys/fs/cgroup/memory', path.cgroupParent);
  return readdirSync(parent, { withFileTypes: true })
    .filter((entry) => entry.isDirectory() && named(entry.name))
    .map((entry) => Number(readFileSync(join(parent, entry.name, 'memory.usage_in_bytes'), 'utf8')));
}

async function createPool(
  path: Path,
  name: string,
  max: number,
  ready: number,
  preload: string[],
): Promise<void> {
  // Idle sessions are held for the hour the measurement may take.
  await path.client.createPool(name, max, ready, { preloadModules: preload, cooldownSeconds: 3600 });
  await warmPool(path.server, name, ready);
}

let counter = 0;
const newIdentifier = () => `density-${process.pid}-${counter++}`;

async function run(path: Path, pool: string, identifier: string, code: string): Promise<number> {
  return (await path.client.run(pool, identifier, code)).ms;
}

/** Per idle session: host memory (meminfo delta), its own cgroup, and the zygotes' cgroups. */
async function idleSessions(
  path: Path,
  pool: string,
  preload: string[],
  code: string,
): Promise<{ hostMiB: number; cgroupMiB: number; sharedMiB: number }> {
  await createPool(path, pool, args.sessions + 2, 1, preload);
  await new Promise((resolve) => setTimeout(resolve, 500));
  const before = hostUsedBytes();
  const identifiers = Array.from({ length: args.sessions }, newIdentifier);
  for (const identifier of identifiers) await run(path, pool, identifier, code);
  await warmPool(path.server, pool, 1);
  await new Promise((resolve) => setTimeout(resolve, 1000));
  const after = hostUsedBytes();
  const sessionIds = new Set(
    path.server.pools
      .manager(poolId(BENCH_SUBSCRIPTION, 'bench', pool))!
      .listSessions()
      .map((session) => session.id),
  );
  const sessionCharges = cgroupBytes(path, (name) => sessionIds.has(name));
  const shared = cgroupBytes(path, (name) => name.startsWith('zygote-')).reduce(
    (sum, bytes) => sum + bytes,
    0,
  );
  await Promise.all(identifiers.map((identifier) => path.client.endSession(pool, identifier)));
  return {
    hostMiB: (after - before) / args.sessions / MIB,
    cgroupMiB: sessionCharges.reduce((sum, bytes) => sum + bytes, 0) / sessionCharges.length / MIB,
    sharedMiB: shared / MIB,
  };
}

/** A new identifier's first result with no ready sandbox: the pool starts one for it. */
async function coldStarts(path: Path, pool: string, preload: string[]): Promise<number[]> {
  await createPool(path, pool, 4, 0, preload);
  const samples: number[] = [];
  for (let i = 0; i < args.cold; i++) {
    const identifier = newIdentifier();
    samples.push(await run(path, pool, identifier, 'print(1)'));
    await path.client.endSession(pool, identifier);
  }
  return samples;
}

async function concurrentNewIdentifiers(path: Path): Promise<number[]> {
  await createPool(path, 'conc', 2 * CONCURRENT, CONCURRENT, []);
  const samples: number[] = [];
  for (let round = 0; round < args.rounds; round++) {
    await warmPool(path.server, 'conc', CONCURRENT);
    const identifiers = Array.from({ length: CONCURRENT }, newIdentifier);
    samples.push(...(await Promise.all(identifiers.map((id) => run(path, 'conc', id, 'print(1)')))));
    await Promise.all(identifiers.map((id) => path.client.endSession('conc', id)));
  }
  return samples;
}

/**
 * `held` data-science sessions at once, over pools of POOL_MAX: each runs USE_PANDAS as it starts,
 * then, all held, each answers again; host memory per session from /proc/meminfo.
 */
async function heldAtOnce(path: Path): Promise<{ answering: number; hostMiB: number }> {
  const pools = Array.from({ length: Math.ceil(args.held / POOL_MAX) }, (_, i) => `held${i}`);
  for (const pool of pools) await createPool(path, pool, POOL_MAX, 1, PRELOAD);
  await new Promise((resolve) => setTimeout(resolve, 500));
  const before = hostUsedBytes();
  const sessions = Array.from({ length: args.held }, (_, i) => ({
    pool: pools[i % pools.length]!,
    identifier: newIdentifier(),
  }));
  const eachInTurn = async (work: (session: (typeof sessions)[number]) => Promise<unknown>) => {
    let next = 0;
    const client = async () => {
      while (next < sessions.length) await work(sessions[next++]!);
    };
    await Promise.all(Array.from({ length: HELD_CLIENTS }, client));
  };
  await eachInTurn(({ pool, identifier }) => run(path, pool, identifier, USE_PANDAS));
  await new Promise((resolve) => setTimeout(resolve, 1000));
  const after = hostUsedBytes();
  let answering = 0;
  await eachInTurn(async ({ pool, identifier }) => {
    const answer = await path.client.run(pool, identifier, 'print(1)').catch(() => undefined);
    if (answer?.stdout === '1\n') answering++;
  });
  await eachInTurn(({ pool, identifier }) => path.client.endSession(pool, identifier));
  return { answering, hostMiB: (after - before) / args.held / MIB };
}

interface Measured {
  plain: Awaited<ReturnType<typeof idleSessions>>;
  dataScience: Awaited<ReturnType<typeof idleSessions>>;
  coldPlain: ReturnType<typeof summary>;
  coldDataScience: ReturnType<typeof summary>;
  concurrent: ReturnType<typeof summary>;
  held: Awaited<ReturnType<typeof heldAtOnce>> | undefined;
}

async function measure(name: Path['name'], index: number): Promise<Measured> {
  const path = await startPath(name, index);
  try {
    console.error(`[${name}] idle plain sessions…`);
    const plain = await idleSessions(path, 'plain', [], 'print(1)');
    console.error(`[${name}] idle data-science sessions…`);
    const dataScience = await idleSessions(path, 'datasci', PRELOAD, USE_PANDAS);
    console.error(`[${name}] cold starts…`);
    const coldPlain = summary(await coldStarts(path, 'coldplain', []));
    const coldDataScience = summary(await coldStarts(path, 'coldds', PRELOAD));
    console.error(`[${name}] ${CONCURRENT} concurrent new identifiers…`);
    const concurrent = summary(await concurrentNewIdentifiers(path));
    if (name === 'runc')
      return { plain, dataScience, coldPlain, coldDataScience, concurrent, held: undefined };
    console.error(`[${name}] ${args.held} data-science sessions at once…`);
    const held = await heldAtOnce(path);
    return { plain, dataScience, coldPlain, coldDataScience, concurrent, held };
  } finally {
    await stopPath(path);
  }
}

async function main(): Promise<void> {
  const host = machine();
  console.error(`machine: ${host}`);
  const runc = await measure('runc', 0);
  const zygote = await measure('zygote', 1);
  const ms = (s: ReturnType<typeof summary>) => `${fmt(s.p50)} / ${fmt(s.p99)}`;
  const rows: [string, string, string][] = [
    [
      `idle plain session: host memory (MiB, meminfo, ${args.sessions} sessions)`,
      fmt(runc.plain.hostMiB),
      fmt(zygote.plain.hostMiB),
    ],
    [
      'idle data-science session (numpy + pandas, used): host memory (MiB, meminfo)',
      fmt(runc.dataScience.hostMiB),
      fmt(zygote.dataScience.hostMiB),
    ],
    [
      'idle data-science session: charged to its own cgroup (MiB)',
      fmt(runc.dataScience.cgroupMiB),
      fmt(zygote.dataScience.cgroupMiB),
    ],
    [
      'prepared state shared by every session: the zygotes’ cgroups (MiB, all pools)',
      fmt(runc.dataScience.sharedMiB),
      fmt(zygote.dataScience.sharedMiB),
    ],
    ['cold start → first result, plain pool (ms, p50 / p99)', ms(runc.coldPlain), ms(zygote.coldPlain)],
    [
      'cold start → first result, data-science pool (ms, p50 / p99)',
      ms(runc.coldDataScience),
      ms(zygote.coldDataScience),
    ],
    [
      `new identifier → first result, ${CONCURRENT} clients at once (ms, p50 / p99)`,
      ms(runc.concurrent),
      ms(zygote.concurrent),
    ],
    [
      `${args.held} idle data-science sessions at once on this node: how many answer`,
      'not run',
      `${zygote.held!.answering} of ${args.held}`,
    ],
    [
      `the same ${args.held}: host memory (MiB each, meminfo; GiB in all)`,
      `would need ${fmt((runc.dataScience.hostMiB * args.held) / 1024)} GiB`,
      `${fmt(zygote.held!.hostMiB)}; ${fmt((zygote.held!.hostMiB * args.held) / 1024)} GiB`,
    ],
  ];
  const table = [
    `Density and cold start, ${new Date().toISOString().slice(0, 10)}. Machine: ${host}.`,
    '',
    '| measure | runc (today) | zygote |',
    '|---|---|---|',
    ...rows.map(([what, a, b]) => `| ${what} | ${a} | ${b} |`),
  ].join('\n');
  writeReport('density', table, args.quick);
}

await main();
process.exit(0);
