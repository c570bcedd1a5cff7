/**
 * Sandbox benchmarks (issue: foundation). Not a test: it measures, prints a Markdown table and writes
 * it to bench/results/. Run as root after scripts/setup.sh:
 *
 *   node --import tsx bench/sandbox.bench.ts [--quick] [--cold 30] [--warm 2000] [--idle 100]
 *
 * - cold start: driver.create() → the agent answers `1+1`, with runc and with gVisor, beside the
 *   floor: runc running `python3 -c pass` in the same image and hardened bundle, with no monitor or
 *   agent.
 * - warm execution: round trip of `1+1` through the agent client on a running sandbox.
 * - idle memory: PSS of every process of a sandbox (its conmon included) with N sandboxes up, and
 *   again after `import pandas` in some of them.
 * - NodeLTS beside them: cold start (→ `1+1`), warm round trip, and idle PSS with its agent up.
 */

import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';

import { benchArgs, fmt, machine, summary, writeReport } from './report.js';

import { InterpreterInstance } from '../packages/server/src/pool/interpreter-instance.js';
import { DEFAULT_RESOURCES, type RuntimeName } from '../packages/server/src/sandbox/driver.js';
import { OciDriver } from '../packages/server/src/sandbox/oci/oci-driver.js';
import {
  config,
  isolatedDriverOptions,
  removeIsolatedDriver,
} from '../packages/server/test/isolated-driver.js';

const args = benchArgs({
  cold: { full: 30, quick: 2 },
  warm: { full: 2000, quick: 50 },
  idle: { full: 100, quick: 4 },
});
const COLD_RUNS = args.cold;
const WARM_RUNS = args.warm;
const IDLE_SANDBOXES = args.idle;
const PANDAS_SANDBOXES = Math.min(10, IDLE_SANDBOXES);

const image = { rootfs: config.paths.pythonRootfs, agentDir: config.paths.pythonAgentDir };
const nodeImage = {
  rootfs: config.paths.nodeRootfs,
  agentDir: config.paths.nodeAgentDir,
  agent: 'node' as const,
};
type Image = typeof image | typeof nodeImage;
const NODE_IDLE_SANDBOXES = Math.min(10, IDLE_SANDBOXES);
const agent = { connectTimeoutMs: 30_000, interruptGraceMs: 2_000 };
const options = isolatedDriverOptions('bench', IDLE_SANDBOXES + 4);
const driver = new OciDriver(options);

let counter = 0;
const nextId = (label: string) => `bench-${label}-${counter++}`;

function start(
  label: string,
  cpu = DEFAULT_RESOURCES.cpu,
  runtime: RuntimeName = 'runc',
  from: Image = image,
): Promise<InterpreterInstance> {
  return InterpreterInstance.start(driver, {
    id: nextId(label),
    runtime,
    image: from,
    resources: { ...DEFAULT_RESOURCES, cpu },
    agent,
  });
}

async function coldStart(runtime: RuntimeName, runs: number, from: Image = image): Promise<number[]> {
  const samples: number[] = [];
  for (let i = 0; i < runs; i++) {
    const began = performance.now();
    const session = await start('cold', DEFAULT_RESOURCES.cpu, runtime, from);
    const outcome = await session.execute({ code: '1+1', timeoutMs: 10_000, maxOutputChars: 100 });
    samples.push(performance.now() - began);
    if (outcome.result !== 2) throw new Error(`cold start answered ${JSON.stringify(outcome.result)}`);
    await session.destroy();
  }
  return samples;
}

/** `runc run` of `python3 -c pass` in the same hardened bundle: what the runtime itself costs. */
async function runtimeFloor(): Promise<number[]> {
  // A sandbox made by the driver provides a real bundle; its config is reused with another command.
  const probe = await start('floor');
  const bundleDir = join(options.stateDir, probe.id, 'bundle');
  const configJson = JSON.parse(readFileSync(join(bundleDir, 'config.json'), 'utf8')) as {
    process: { args: string[] };
    linux: { cgroupsPath: string };
  };
  const floorBundle = join(options.stateDir, 'floor-bundle');
  mkdirSync(floorBundle, { recursive: true });
  const runc = options.runtimes.runc!;
  const samples: number[] = [];
  for (let i = 0; i < COLD_RUNS; i++) {
    const id = `floor-${i}`;
    configJson.process.args = ['/usr/bin/python3', '-c', 'pass'];
    configJson.linux.cgroupsPath = `/${options.cgroupParent}/${id}`;
    writeFileSync(join(floorBundle, 'config.json'), JSON.stringify(configJson));
    const began = performance.now();
    const result = spawnSync(runc.path, [...runc.args, 'run', '--bundle', floorBundle, id], {
      stdio: 'ignore',
    });
    samples.push(performance.now() - began);
    if (result.status !== 0) throw new Error(`runc run exited ${String(result.status)}`);
  }
  await probe.destroy();
  rmSync(floorBundle, { recursive: true });
  return samples;
}

async function warmExecution(cpu: number, from: Image = image): Promise<number[]> {
  const session = await start('warm', cpu, 'runc', from);
  const samples: number[] = [];
  for (let i = 0; i < WARM_RUNS + 100; i++) {
    const began = performance.now();
    await session.execute({ code: '1+1', timeoutMs: 10_000, maxOutputChars: 100 });
    if (i >= 100) samples.push(performance.now() - began); // the first 100 warm up both sides
  }
  await session.destroy();
  return samples;
}

function pssKiB(pid: number): number {
  try {
    return Number(/^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'))?.[1] ?? 0);
  } catch {
    return 0;
  }
}

/** PSS of every process in the sandbox's cgroup plus its conmon, in MiB. */
function sandboxPssMiB(id: string): number {
  const procs = readFileSync(`/sys/fs/cgroup/pids/${options.cgroupParent}/${id}/cgroup.procs`, 'utf8')
    .trim()
    .split('\n')
    .map(Number);
  const conmon = Number(readFileSync(join(options.stateDir, id, 'conmon.pid'), 'utf8'));
  return [...procs, conmon].reduce((sum, pid) => sum + pssKiB(pid), 0) / 1024;
}

async function idleMemory(): Promise<{ idle: number[]; pandas: number[] }> {
  const sessions: InterpreterInstance[] = [];
  for (let i = 0; i < IDLE_SANDBOXES; i += 4) {
    sessions.push(
      ...(await Promise.all(Array.from({ length: Math.min(4, IDLE_SANDBOXES - i) }, () => start('idle')))),
    );
  }
  await Promise.all(sessions.map((s) => s.execute({ code: '1+1', timeoutMs: 10_000, maxOutputChars: 10 })));
  await new Promise((resolve) => setTimeout(resolve, 2000));
  const idle = sessions.map((s) => sandboxPssMiB(s.id));
  for (const s of sessions.slice(0, PANDAS_SANDBOXES)) {
    await s.execute({ code: 'import pandas', timeoutMs: 120_000, maxOutputChars: 10 });
  }
  const pandas = sessions.slice(0, PANDAS_SANDBOXES).map((s) => sandboxPssMiB(s.id));
  for (const s of sessions) await s.destroy();
  return { idle, pandas };
}

/** PSS per NodeLTS sandbox with `count` of them up, each having answered once. */
async function nodeIdleMemory(count: number): Promise<number[]> {
  const sessions = await Promise.all(
    Array.from({ length: count }, () => start('node-idle', DEFAULT_RESOURCES.cpu, 'runc', nodeImage)),
  );
  await Promise.all(sessions.map((s) => s.execute({ code: '1+1', timeoutMs: 10_000, maxOutputChars: 10 })));
  await new Promise((resolve) => setTimeout(resolve, 2000));
  const pss = sessions.map((s) => sandboxPssMiB(s.id));
  for (const s of sessions) await s.destroy();
  return pss;
}

async function main(): Promise<void> {
  const host = machine();
  console.error(`machine: ${host}`);
  console.error('cold start…');
  const cold = summary(await coldStart('runc', COLD_RUNS));
  console.error('cold start under gVisor…');
  const coldGvisor = summary(await coldStart('runsc', Math.min(COLD_RUNS, 10)));
  console.error('runtime floor…');
  const floor = summary(await runtimeFloor());
  console.error('warm execution…');
  const warm = summary(await warmExecution(DEFAULT_RESOURCES.cpu));
  const warmOneCore = summary(await warmExecution(1));
  console.error(`idle memory with ${IDLE_SANDBOXES} sandboxes…`);
  const memory = await idleMemory();
  const idle = summary(memory.idle);
  const pandas = summary(memory.pandas);
  console.error('NodeLTS: cold start, warm execution, idle memory…');
  const nodeCold = summary(await coldStart('runc', COLD_RUNS, nodeImage));
  const nodeWarm = summary(await warmExecution(DEFAULT_RESOURCES.cpu, nodeImage));
  const nodeIdle = summary(await nodeIdleMemory(NODE_IDLE_SANDBOXES));
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

  const table = [
    `Sandbox benchmark, ${new Date().toISOString().slice(0, 10)}. Machine: ${host}.`,
    `Sandboxes at the default size (${DEFAULT_RESOURCES.cpu} CPU, ${DEFAULT_RESOURCES.memoryBytes / 2 ** 20} MiB), PythonLTS image, runc unless a row says otherwise.`,
    '',
    '| measurement | n | p50 | p99 | target |',
    '|---|---|---|---|---|',
    `| cold start: create → agent answers \`1+1\` | ${cold.n} | ${fmt(cold.p50)} ms | ${fmt(cold.p99)} ms | p50 ≤ 100 ms |`,
    `| cold start under gVisor (runsc, ptrace platform) | ${coldGvisor.n} | ${fmt(coldGvisor.p50)} ms | ${fmt(coldGvisor.p99)} ms | — |`,
    `| floor: \`runc run\` of \`python3 -c pass\`, same image and bundle | ${floor.n} | ${fmt(floor.p50)} ms | ${fmt(floor.p99)} ms | — |`,
    `| warm execution round trip of \`1+1\` | ${warm.n} | ${fmt(warm.p50)} ms | ${fmt(warm.p99)} ms | p50 ≤ 2 ms |`,
    `| same, sandbox with 1 CPU (no CFS throttling in a tight loop) | ${warmOneCore.n} | ${fmt(warmOneCore.p50)} ms | ${fmt(warmOneCore.p99)} ms | — |`,
    `| idle PSS per sandbox, ${IDLE_SANDBOXES} up (agent, tini, conmon) | ${idle.n} | ${fmt(idle.p50)} MiB | ${fmt(idle.p99)} MiB | ≤ 15 MiB (mean ${fmt(mean(memory.idle))}) |`,
    `| PSS per sandbox after \`import pandas\` | ${pandas.n} | ${fmt(pandas.p50)} MiB | ${fmt(pandas.p99)} MiB | — (mean ${fmt(mean(memory.pandas))}) |`,
    `| NodeLTS cold start: create → agent answers \`1+1\` | ${nodeCold.n} | ${fmt(nodeCold.p50)} ms | ${fmt(nodeCold.p99)} ms | as PythonLTS |`,
    `| NodeLTS warm execution round trip of \`1+1\` | ${nodeWarm.n} | ${fmt(nodeWarm.p50)} ms | ${fmt(nodeWarm.p99)} ms | as PythonLTS |`,
    `| NodeLTS idle PSS per sandbox, ${NODE_IDLE_SANDBOXES} up (agent and its output reader, tini, conmon) | ${nodeIdle.n} | ${fmt(nodeIdle.p50)} MiB | ${fmt(nodeIdle.p99)} MiB | — |`,
  ].join('\n');
  writeReport('sandbox', table, args.quick);
}

try {
  await main();
} finally {
  await removeIsolatedDriver(options);
}
