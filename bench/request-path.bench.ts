/**
 * The request path benchmark (issue 30): this checkout's server beside a previous release, in one
 * run, each a `sandpool serve` process of its own over HTTPS, each with a default-like PythonLTS pool
 * (no preload list, so numpy and pandas are preloaded where sandboxes are forked; 20 ready).
 * Not a test: it prints a Markdown table and keeps it in bench/results/.
 *
 *   node --import tsx bench/request-path.bench.ts [--quick] [--base <git revision>] [--runs 3]
 *     [--rounds 10] [--sequential 60] [--cycles 60] [--existing 200]
 *
 * Per server and run, the two servers taking turns (one runs while the other idles):
 * - 16 new identifiers at once → the first result of `print(1)`, `rounds` rounds: p50 and p99;
 * - one new identifier at a time: p50 and p99;
 * - `print(1)` on an existing session: p50 and p99;
 * - the server process's own CPU time (utime + stime, /proc/<pid>/stat) per new-identifier cycle
 *   (execute, end the session, refill to the ready target) and per `print(1)` on an existing session.
 * The previous release runs from a git worktree of `--base` as it shipped (its TypeScript through
 * tsx); this checkout runs compiled (packages/server/dist, built by `npx tsc -b`).
 */

import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, symlinkSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

import { startServerProcess, stopServerProcess, type ServerProcess } from './server-process.js';
import { benchArgs, fmt, machine, summary, writeReport } from './report.js';

/** The last release before the request path was rebuilt. */
const PREVIOUS_RELEASE = '68b500d';
const CONCURRENT = 16;
const READY = 20;
const KEY = `sp_0123456789ab_${'R'.repeat(43)}`;
const MAX_SANDBOXES = 96;
const POOL = 'default';
const REPO = fileURLToPath(new URL('../', import.meta.url));

const args = benchArgs(
  {
    runs: { full: 3, quick: 1 },
    rounds: { full: 10, quick: 1 },
    sequential: { full: 60, quick: 3 },
    cycles: { full: 60, quick: 3 },
    existing: { full: 200, quick: 10 },
  },
  [],
  { base: PREVIOUS_RELEASE },
);
const { base } = args;

const CLOCK_TICKS = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());

/** The process's CPU time so far, in milliseconds (user and system). */
function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  // utime and stime are the 14th and 15th fields; the split above starts at the 3rd.
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS;
}

/** A worktree of the previous release, sharing this checkout's dependencies; undefined when the clone lacks it. */
function previousRelease(): string | undefined {
  try {
    execFileSync('git', ['-C', REPO, 'rev-parse', '--verify', `${base}^{commit}`], { stdio: 'ignore' });
  } catch {
    return undefined;
  }
  const dir = `/var/tmp/sandpool-bench-release-${base}`;
  if (!existsSync(dir)) {
    execFileSync('git', ['-C', REPO, 'worktree', 'add', '--detach', dir, base], { stdio: 'ignore' });
    // Its dependencies are this checkout's, where each package keeps them (nested versions too).
    for (const modules of [
      'node_modules',
      ...readdirSync(`${REPO}packages`).map((p) => `packages/${p}/node_modules`),
    ]) {
      if (existsSync(`${REPO}${modules}`)) symlinkSync(`${REPO}${modules}`, `${dir}/${modules}`);
    }
  }
  return dir;
}

const warm = (server: ServerProcess) => server.client.waitForReady(server.client.armUrl(POOL), READY);

let counter = 0;
const newIdentifier = () => `path-${process.pid}-${counter++}`;

interface RunResult {
  concurrent: number[];
  sequential: number[];
  existing: number[];
  cpuPerCycle: number;
  cpuPerExisting: number;
}

async function measure(server: ServerProcess): Promise<RunResult> {
  const { client } = server;
  const concurrent: number[] = [];
  for (let round = 0; round < args.rounds; round++) {
    await warm(server);
    const identifiers = Array.from({ length: CONCURRENT }, newIdentifier);
    concurrent.push(
      ...(await Promise.all(identifiers.map(async (id) => (await client.printOne(POOL, id)).ms))),
    );
    await Promise.all(identifiers.map((id) => client.endSession(POOL, id)));
  }
  const sequential: number[] = [];
  for (let i = 0; i < args.sequential; i++) {
    await warm(server);
    const id = newIdentifier();
    sequential.push((await client.printOne(POOL, id)).ms);
    await client.endSession(POOL, id);
  }
  // CPU per new-identifier cycle: from a full warm set to a full warm set again.
  await warm(server);
  const before = cpuMs(server.process.pid!);
  for (let i = 0; i < args.cycles; i++) {
    const id = newIdentifier();
    await client.printOne(POOL, id);
    await client.endSession(POOL, id);
  }
  await warm(server);
  const cpuPerCycle = (cpuMs(server.process.pid!) - before) / args.cycles;

  const kept = newIdentifier();
  await client.printOne(POOL, kept);
  const existing: number[] = [];
  const cpuBefore = cpuMs(server.process.pid!);
  for (let i = 0; i < args.existing; i++) existing.push((await client.printOne(POOL, kept)).ms);
  const cpuPerExisting = (cpuMs(server.process.pid!) - cpuBefore) / args.existing;
  await client.endSession(POOL, kept);
  return { concurrent, sequential, existing, cpuPerCycle, cpuPerExisting };
}

const releaseDir = previousRelease();
const servers: ServerProcess[] = [
  await startServerProcess({
    label: 'this',
    command: [`${REPO}packages/server/dist/src/main.js`, 'serve'],
    block: 0,
    key: KEY,
    maxSandboxes: MAX_SANDBOXES,
  }),
];
if (releaseDir) {
  servers.push(
    await startServerProcess({
      label: 'previous',
      command: ['--import', 'tsx', `${releaseDir}/packages/server/src/main.ts`, 'serve'],
      block: 1,
      key: KEY,
      maxSandboxes: MAX_SANDBOXES,
    }),
  );
}
for (const server of servers) {
  await server.client.createPool(POOL, MAX_SANDBOXES / 2, READY);
}

const results = new Map<string, RunResult[]>(servers.map((server) => [server.label, []]));
try {
  for (let run = 0; run < args.runs; run++) {
    for (const server of servers) results.get(server.label)!.push(await measure(server));
  }
} finally {
  for (const server of servers) await stopServerProcess(server);
}

const ms = (samples: number[]) => {
  const s = summary(samples);
  return `${fmt(s.p50)} / ${fmt(s.p99)} ms`;
};
const column = (label: string, pick: (runs: RunResult[]) => string) => {
  const runs = results.get(label);
  return runs ? pick(runs) : `— (${base} is not in this clone)`;
};
const rows: [string, (runs: RunResult[]) => string][] = [
  [
    `16 new identifiers at once, p50 / p99 of each run (${args.rounds} rounds)`,
    (runs) => runs.map((r) => ms(r.concurrent)).join('; '),
  ],
  ['same, all runs together', (runs) => ms(runs.flatMap((r) => r.concurrent))],
  ['one new identifier at a time', (runs) => ms(runs.flatMap((r) => r.sequential))],
  ['`print(1)` on an existing session', (runs) => ms(runs.flatMap((r) => r.existing))],
  [
    'server CPU per new-identifier cycle (execute, end, refill)',
    (runs) => `${fmt(summary(runs.map((r) => r.cpuPerCycle)).p50)} ms`,
  ],
  [
    'server CPU per `print(1)` on an existing session',
    (runs) => `${fmt(summary(runs.map((r) => r.cpuPerExisting)).p50)} ms`,
  ],
];
const table = [
  `Request path, ${new Date().toISOString().slice(0, 10)}: ${machine()}; HTTPS, a PythonLTS pool without a preload list (numpy and pandas preloaded where forked), ${READY} ready; ${args.runs} runs, the servers taking turns.`,
  '',
  `| measurement | this checkout (compiled) | previous release (${base}) |`,
  '|---|---|---|',
  ...rows.map(([name, pick]) => `| ${name} | ${column('this', pick)} | ${column('previous', pick)} |`),
].join('\n');
writeReport('request-path', table, args.quick);
