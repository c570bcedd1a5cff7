/**
 * Load and soak (issue: security and reliability). Not a test: it drives a real server process with
 * real sandboxes from many concurrent clients for minutes, on loopback only, and reports what a
 * service owner asks: any 5xx, anything lost, latency percentiles, sessions reaped, server memory.
 * Run as root after scripts/setup.sh:
 *
 *   node --import tsx bench/soak.bench.ts [--quick] [--clients 200] [--minutes 10] [--runc]
 *
 * `--runc` starts every Python sandbox under runc instead of forking it from a zygote (SANDPOOL_ZYGOTE).
 * Three pools (two PythonLTS, one Shell), each max 8 sessions with 2 ready and a 20 s cooldown.
 * Every client has its own API key (SessionExecutor) and loops: mostly synchronous executions, some
 * asynchronous ones (polled to the end), file uploads and session reads, on identifiers that rotate
 * every 45 s so that sessions keep being allocated and reaped. A 429 (pool full or rate limit) is
 * back-pressure: the client waits Retry-After and counts it. At the end every asynchronous execution
 * must have a final result, every session must have been reaped after its cooldown, and the server's
 * resident memory is compared between the first and the last minutes.
 */

import { mkdtempSync, readFileSync, chmodSync } from 'node:fs';

import { call, startChild, type Child } from '../packages/server/test/child-server.js';
import {
  DATA,
  MGMT,
  armPath,
  interpreterPool,
  poolPath,
  removeServerState,
  testConfig,
  testServerEnv,
} from '../packages/server/test/server-harness.js';
import { benchArgs, fmt, machine, summary, writeReport } from './report.js';

const args = benchArgs({ clients: { full: 200, quick: 6 }, minutes: { full: 10, quick: 0.25 } }, ['runc']);
const CLIENTS = args.clients;
const DURATION_MS = args.minutes * 60_000;
const POOLS = [
  { name: 'soakpya', type: 'PythonLTS' as const, code: (i: number) => `sum(range(${1000 + i}))` },
  { name: 'soakpyb', type: 'PythonLTS' as const, code: (i: number) => `len(str(2 ** ${500 + i}))` },
  { name: 'soaksh', type: 'Shell' as const, code: (i: number) => `echo $(( ${i} * 2 ))` },
];
const SLOTS_PER_EPOCH = 3;
const EPOCH_MS = 45_000;
const COOLDOWN_S = 20;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const home = mkdtempSync('/var/tmp/sandpool-bench-soak-');
chmodSync(home, 0o711);
const env = testServerEnv('soak', home, {
  SANDPOOL_LOG_LEVEL: 'warn',
  SANDPOOL_REAPER_INTERVAL_MS: '1000',
  SANDPOOL_RATE_LIMIT_PER_IDENTIFIER: '100',
  SANDPOOL_MIN_COOLDOWN_SECONDS: String(COOLDOWN_S),
  SANDPOOL_ZYGOTE: String(!args.runc),
});
const config = testConfig(env);

interface Tally {
  latencies: Record<string, number[]>;
  statuses: Map<string, number>;
  serverErrors: string[];
  networkErrors: number;
  throttled: number;
  lost: string[];
  asyncIds: { pool: string; identifier: string; id: string }[];
  /** One example of each 4xx other than back-pressure. */
  samples: Map<string, string>;
}
const tally: Tally = {
  latencies: { execute: [], upload: [], session: [] },
  statuses: new Map(),
  serverErrors: [],
  networkErrors: 0,
  throttled: 0,
  lost: [],
  asyncIds: [],
  samples: new Map(),
};

function rssMiB(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8')
    .split('\n')
    .find((l) => l.startsWith('VmRSS:'))!;
  return Number(line.split(/\s+/)[1]) / 1024;
}

async function request(
  child: Child,
  key: string,
  kind: keyof Tally['latencies'],
  method: string,
  path: string,
  body?: unknown,
  raw?: FormData,
): Promise<{ status: number; json: any; headers: Headers } | undefined> {
  const started = performance.now();
  try {
    const response = await fetch(`${child.url}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${key}`,
        ...(body !== undefined && { 'content-type': 'application/json' }),
      },
      ...(body !== undefined && { body: JSON.stringify(body) }),
      ...(raw && { body: raw }),
    });
    const text = await response.text();
    const json = text ? (JSON.parse(text) as unknown) : undefined;
    const label = `${response.status}${response.status >= 400 ? ` ${(json as any)?.error?.code}` : ''}`;
    tally.statuses.set(label, (tally.statuses.get(label) ?? 0) + 1);
    if (response.status >= 500) tally.serverErrors.push(`${method} ${path}: ${text.slice(0, 300)}`);
    if (response.status === 400 && !tally.samples.has(label))
      tally.samples.set(label, `${method} ${path}: ${text.slice(0, 300)}`);
    if (response.status === 429) {
      tally.throttled++;
      await sleep(Number(response.headers.get('retry-after') ?? '1') * 1000);
      return undefined;
    }
    if (response.status < 300) tally.latencies[kind]!.push(performance.now() - started);
    return { status: response.status, json, headers: response.headers };
  } catch {
    tally.networkErrors++;
    return undefined;
  }
}

async function client(child: Child, key: string, index: number, deadline: number, started: number) {
  const pool = POOLS[index % POOLS.length]!;
  const work = (round: number) =>
    pool.type === 'Shell' ? { shellCommand: pool.code(round % 100) } : { code: pool.code(round % 100) };
  let round = 0;
  while (Date.now() < deadline) {
    round++;
    const epoch = Math.floor((Date.now() - started) / EPOCH_MS);
    const identifier = `slot-${(index + round) % SLOTS_PER_EPOCH}-e${epoch}`;
    const at = (path: string) => `${poolPath(pool.name)}/${path}?${DATA}&identifier=${identifier}`;
    const dice = Math.random();
    if (dice < 0.8) {
      const answer = await request(child, key, 'execute', 'POST', at('executions'), work(round));
      // Code interpreters answer Succeeded/Failed; Shell pools the command's exit code.
      const outcome = String(answer?.json?.status);
      if (answer?.status === 200 && !['Succeeded', 'Failed'].includes(outcome) && !/^\d+$/.test(outcome)) {
        tally.lost.push(
          `execution answered without an outcome: ${JSON.stringify(answer.json).slice(0, 200)}`,
        );
      }
    } else if (dice < 0.87) {
      const answer = await request(child, key, 'execute', 'POST', at('executions'), {
        ...work(round),
        executionType: 'Asynchronous',
      });
      if (answer?.status === 202) tally.asyncIds.push({ pool: pool.name, identifier, id: answer.json.id });
    } else if (dice < 0.95) {
      const form = new FormData();
      form.append('file', new Blob([`client ${index} round ${round}\n`.repeat(64)]), `c${index}.txt`);
      await request(child, key, 'upload', 'POST', at('files'), undefined, form);
    } else {
      await request(child, key, 'session', 'GET', at('session'));
    }
  }
}

const child = await startChild(env);
try {
  const admin = env.SANDPOOL_BOOTSTRAP_API_KEY!;
  for (const pool of POOLS) {
    const body = interpreterPool({ max: 8, ready: 2, cooldown: COOLDOWN_S, containerType: pool.type });
    const created = await call(child, 'PUT', `${armPath(pool.name)}?${MGMT}`, body);
    if (created.status !== 201)
      throw new Error(`PUT ${pool.name}: ${created.status} ${JSON.stringify(created.json)}`);
  }
  for (const pool of POOLS) {
    for (let ready = false; !ready; await sleep(200)) {
      const status = (await call(child, 'GET', `${armPath(pool.name)}?${MGMT}`)).json.properties;
      ready = status.provisioningState === 'Succeeded' && status.sessionStatus.readySessionCount === 2;
    }
  }
  const keys: string[] = [];
  for (let i = 0; i < CLIENTS; i++) {
    const response = await fetch(`${child.url}/sandpool/apiKeys`, {
      method: 'POST',
      headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: `soak-${i}`, roles: ['SessionExecutor'] }),
    });
    keys.push(((await response.json()) as { key: string }).key);
  }

  const pid = child.process.pid!;
  const rss: { at: number; mib: number }[] = [];
  const started = Date.now();
  const sampler = setInterval(() => rss.push({ at: Date.now() - started, mib: rssMiB(pid) }), 5_000);
  const deadline = started + DURATION_MS;
  console.log(`soak: ${CLIENTS} clients, ${args.minutes} min, server pid ${pid}`);
  await Promise.all(keys.map((key, i) => client(child, key, i, deadline, started)));
  clearInterval(sampler);
  const ranMs = Date.now() - started;

  // Every asynchronous execution reaches a final state.
  const admitted = tally.asyncIds.length;
  for (const { pool, identifier, id } of tally.asyncIds) {
    for (let attempt = 0; ; attempt++) {
      const answer = await call(
        child,
        'GET',
        `${poolPath(pool)}/executions/${id}?${DATA}&identifier=${identifier}`,
      );
      if (answer.status === 200 && answer.json.status !== 'Running') break;
      if (answer.status === 429) {
        await sleep(1000);
        continue;
      }
      if (answer.status !== 200 || attempt > 100) {
        tally.lost.push(
          `async execution ${id}: ${answer.status} ${JSON.stringify(answer.json).slice(0, 200)}`,
        );
        break;
      }
      await sleep(100);
    }
  }

  // Every session is reaped once its cooldown has passed.
  await sleep((COOLDOWN_S + 5) * 1000);
  const leftover: string[] = [];
  for (const pool of POOLS) {
    const status = (await call(child, 'GET', `${armPath(pool.name)}?${MGMT}`)).json.properties.sessionStatus;
    if (status.allocatedSessionCount !== 0)
      leftover.push(`${pool.name}: ${status.allocatedSessionCount} allocated`);
  }
  let allocated = 0;
  let ended = 0;
  for (const pool of POOLS) {
    for (let page = `${armPath(pool.name)}/events?${MGMT}&$top=1000`; page;) {
      const events = await call(child, 'GET', page);
      for (const event of events.json.value as { type: string }[]) {
        if (event.type === 'allocated') allocated++;
        if (event.type === 'ended') ended++;
      }
      page = events.json.nextLink
        ? new URL(events.json.nextLink as string).pathname + new URL(events.json.nextLink as string).search
        : '';
    }
  }

  const minute = (from: number, to: number) => {
    const samples = rss.filter((s) => s.at >= from && s.at < to).map((s) => s.mib);
    return samples.length ? samples.reduce((a, b) => a + b, 0) / samples.length : Number.NaN;
  };
  const firstMinute = minute(60_000, 120_000);
  const lastMinute = minute(ranMs - 60_000, ranMs + 1);
  const requests = [...tally.statuses.values()].reduce((a, b) => a + b, 0);
  const row = (what: string, samples: number[]) => {
    const s = summary(samples);
    const sorted = [...samples].sort((a, b) => a - b);
    const p95 = sorted[Math.min(sorted.length - 1, Math.ceil(0.95 * sorted.length) - 1)]!;
    return `| ${what} | ${s.n} | ${fmt(s.p50)} | ${fmt(p95)} | ${fmt(s.p99)} |`;
  };
  const table = [
    `### Soak: ${CLIENTS} clients, 3 pools, ${fmt(ranMs / 60_000)} min, ${args.runc ? 'runc' : 'forked'} sandboxes (${machine()})`,
    '',
    '| request | n | p50 ms | p95 ms | p99 ms |',
    '|---|---|---|---|---|',
    row('execute (sync + async submit)', tally.latencies.execute!),
    row('upload 2 KB file', tally.latencies.upload!),
    row('GET session', tally.latencies.session!),
    '',
    `- requests: ${requests} (${fmt(requests / (ranMs / 1000))}/s); statuses: ${[...tally.statuses.entries()].map(([k, v]) => `${k} × ${v}`).join(', ')}`,
    `- 5xx: ${tally.serverErrors.length}; connection failures: ${tally.networkErrors}; 429 back-pressure: ${tally.throttled}`,
    `- asynchronous executions admitted: ${admitted}, without a final result: ${tally.lost.filter((l) => l.startsWith('async')).length}; answers without an outcome: ${tally.lost.filter((l) => !l.startsWith('async')).length}`,
    `- sessions allocated: ${allocated}, ended: ${ended}; still allocated ${COOLDOWN_S + 5} s after the last request: ${leftover.length ? leftover.join(', ') : 'none'}`,
    `- server RSS: ${fmt(firstMinute)} MiB in minute 2, ${fmt(lastMinute)} MiB in the last minute, max ${fmt(Math.max(...rss.map((s) => s.mib)))} MiB`,
  ].join('\n');
  writeReport(args.runc ? 'soak-runc' : 'soak', table, args.quick);
  for (const error of [...tally.serverErrors, ...tally.lost].slice(0, 20)) console.log(`  ${error}`);
  for (const sample of tally.samples.values()) console.log(`  example: ${sample}`);
  process.exitCode = tally.serverErrors.length || tally.lost.length || leftover.length ? 1 : 0;
} finally {
  child.process.kill('SIGTERM');
  await new Promise((resolve) => child.process.once('exit', resolve));
  await removeServerState(config);
}
