/**
 * Fault injection against a real server process and real sandboxes: the server killed with SIGKILL
 * in the middle of work, the store locked by another process, the store's disk full, an agent that
 * crashes. Each fault is detected and reported with a typed reason, nothing is orphaned on the host,
 * and the pool recovers.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';

import { DatabaseSync } from 'node:sqlite';

import { OciDriver } from '../../src/sandbox/oci/oci-driver.js';
import { SqliteStore } from '../../src/store/sqlite-store.js';
import { call, sandboxesOnHost, startChild, type Child } from '../child-server.js';
import {
  DATA,
  MGMT,
  armPath,
  eventually,
  interpreterPool,
  poolPath,
  removeServerState,
  testConfig,
  testServerEnv,
  until,
} from '../server-harness.js';
import { SANDBOX_STARTS, childrenOf, skipReason } from './harness.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

// Interpreter sandboxes started by runc, and forked from a zygote: each path meets every fault.
for (const sandboxStart of SANDBOX_STARTS) {
  describe(`faults (${sandboxStart.name})`, { skip: skipReason }, () => {
    const children: ChildProcess[] = [];
    const configs: ReturnType<typeof testConfig>[] = [];
    const mounts: string[] = [];
    after(async () => {
      for (const child of children) child.kill('SIGKILL');
      for (const config of configs) await removeServerState(config);
      for (const mount of mounts) {
        execFileSync('umount', ['-l', mount]);
        rmSync(mount, { recursive: true, force: true });
      }
    });

    /** A server of its own; with `storeDiskMiB`, its store lives alone on a tmpfs of that size. */
    function serve(label: string, options: { storeDiskMiB?: number } = {}) {
      const name = `${sandboxStart.mark}${label}`;
      const home = mkdtempSync(`/var/tmp/sandpool-test-${name}-`);
      chmodSync(home, 0o711);
      let storeDisk: string | undefined;
      if (options.storeDiskMiB) {
        storeDisk = mkdtempSync(`/var/tmp/sandpool-test-${name}-store-`);
        execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${options.storeDiskMiB}m`, 'tmpfs', storeDisk]);
        mounts.push(storeDisk);
      }
      const env = testServerEnv(name, home, {
        ...sandboxStart.env,
        ...(storeDisk ? { SANDPOOL_DATABASE: join(storeDisk, 'sandpool.db') } : {}),
      });
      const config = testConfig(env);
      configs.push(config);
      const start = async () => {
        const child = await startChild(env);
        children.push(child.process);
        return child;
      };
      return { config, storeDisk, start };
    }

    const kill = async (child: Child) => {
      child.process.kill('SIGKILL');
      await new Promise((resolve) => child.process.once('exit', resolve));
    };
    const run = (child: Child, pool: string, identifier: string, code: string, extra: object = {}) =>
      call(child, 'POST', `${poolPath(pool)}/executions?${DATA}&identifier=${identifier}`, {
        code,
        ...extra,
      });
    const createPool = async (child: Child, name: string, body = interpreterPool({ max: 4, ready: 1 })) => {
      const created = await call(child, 'PUT', `${armPath(name)}?${MGMT}`, body);
      assert.equal(created.status, 201);
      await until(`pool ${name}`, async () => {
        const pool = await call(child, 'GET', `${armPath(name)}?${MGMT}`);
        return pool.json.properties?.provisioningState === 'Succeeded';
      });
    };
    const settled = (child: Child, pool: string, ready: number) =>
      until(`pool ${pool} to settle`, async () => {
        const status = (await call(child, 'GET', `${armPath(pool)}?${MGMT}`)).json.properties.sessionStatus;
        return status.startingSessionCount === 0 && status.readySessionCount === ready;
      });

    /**
     * Everything on the host belongs to a live session of the store, and every live session is
     * there, once the removals under way have finished: a session's end is recorded before its
     * sandbox is gone (a surplus ready sandbox retired after the restart, say).
     */
    async function assertNothingOrphaned(config: ReturnType<typeof testConfig>) {
      await eventually(() => compareHostWithStore(config));
    }

    async function compareHostWithStore(config: ReturnType<typeof testConfig>) {
      const store = await SqliteStore.open(config.paths.database);
      try {
        assert.equal(store.integrityCheck(), 'ok');
        const live: string[] = [];
        for (const pool of await store.listPools()) {
          live.push(...(await store.listSessions(pool.id, ['ready', 'allocated'])).map((s) => s.id));
        }
        live.sort();
        const host = await sandboxesOnHost(config);
        assert.deepEqual(host.containers, live, 'runtime containers');
        assert.deepEqual(host.directories, live, 'state directories');
        assert.deepEqual(host.cgroups, live, 'cgroups');
        assert.ok(
          host.mounts!.every((id) => live.includes(id)),
          `mounts of ended sandboxes: ${host.mounts!.join(', ')}`,
        );
        assert.ok(
          host.processes!.every((id) => live.includes(id)),
          `processes of ended sandboxes: ${host.processes!.join(', ')}`,
        );
      } finally {
        await store.close();
      }
    }

    it('kill -9 during a cold allocation and during an execution: sessions reattach, the execution is recorded as lost, nothing is orphaned', async () => {
      const server = serve('faults-kill');
      const first = await server.start();
      await createPool(first, 'busy');
      // Its sessions import sympy as well before their first line: a cold start then takes a second or
      // more (a new zygote imports it, or each sandbox under runc), so the kill lands in one however
      // fast this machine forks.
      const cold = interpreterPool({ max: 4, ready: 0 });
      const slowCold = {
        ...cold,
        properties: { ...cold.properties, preloadModules: ['numpy', 'pandas', 'sympy'] },
      };
      await createPool(first, 'cold', slowCold);
      assert.equal((await run(first, 'busy', 'worker', 'state = 7')).json.status, 'Succeeded');
      const running = await run(first, 'busy', 'worker', 'import time\ntime.sleep(30)', {
        executionType: 'Asynchronous',
      });
      assert.equal(running.status, 202);
      const executionId = running.json.id as string;
      // Three staggered ones make sure the kill lands in one.
      const allocations = ['newcomer-0', 'newcomer-1', 'newcomer-2'].map(async (identifier, i) => {
        await sleep(60 * i);
        return run(first, 'cold', identifier, '1').catch((error: unknown) => error);
      });
      await sleep(150);
      await kill(first);
      const outcomes = await Promise.all(allocations);
      assert.ok(
        outcomes.some((outcome) => outcome instanceof Error),
        'at least one allocation was cut off by the kill',
      );

      const second = await server.start();
      const again = await run(second, 'busy', 'worker', 'state');
      assert.equal(again.headers.get('x-sandpool-session'), 'existing');
      assert.equal(again.json.result?.executionResult, 7, JSON.stringify(again.json));
      const lost = await call(
        second,
        'GET',
        `${poolPath('busy')}/executions/${executionId}?${DATA}&identifier=worker`,
      );
      assert.equal(lost.json.status, 'Failed');
      assert.equal(
        lost.json.error?.code ?? lost.json.result?.error?.code,
        'ServerRestarted',
        JSON.stringify(lost.json),
      );
      for (const identifier of ['newcomer-0', 'newcomer-1', 'newcomer-2']) {
        const newcomer = await run(second, 'cold', identifier, '6 * 7');
        assert.equal(newcomer.json.result?.executionResult, 42, JSON.stringify(newcomer.json));
      }
      await settled(second, 'busy', 1);
      await settled(second, 'cold', 0);
      await assertNothingOrphaned(server.config);
    });

    it('an agent that crashes ends its session with a typed reason, and the next request gets a new one', async () => {
      const server = serve('faults-agent');
      const child = await server.start();
      await createPool(child, 'agents');
      const first = await run(child, 'agents', 'victim', 'x = 1');
      const sandboxId = first.headers.get('x-ms-session-guid')!;
      const state = await OciDriver.fromConfig(server.config).inspect(sandboxId);
      if (state.status !== 'running') assert.fail(`the sandbox should run, it is ${state.status}`);
      // The agent is the init's child; SIGKILL it from the host, as a crash would end it.
      for (const pid of childrenOf(state.pid)) process.kill(pid, 'SIGKILL');
      const broken = await run(child, 'agents', 'victim', 'x');
      assert.ok(
        broken.status < 500 || broken.status === 503,
        `${broken.status} ${JSON.stringify(broken.json)}`,
      );
      const next = await run(child, 'agents', 'victim', '"fresh"');
      assert.equal(next.json.result?.executionResult, 'fresh', JSON.stringify(next.json));
      assert.notEqual(next.headers.get('x-ms-session-guid'), sandboxId);
      const ended = await call(
        child,
        'GET',
        `${armPath('agents')}/events?${MGMT}&type=ended&identifier=victim`,
      );
      assert.equal(ended.json.value.length, 1);
      assert.match(ended.json.value[0].reason, /^(crashed|exited|killed|agentLost)$/);
      await settled(child, 'agents', 1);
      await assertNothingOrphaned(server.config);
    });

    it('a store locked by another process: requests fail with 503 StoreBusy, and work once it is released', async () => {
      const server = serve('faults-lock');
      const child = await server.start();
      await createPool(child, 'locked');
      const lock = new DatabaseSync(server.config.paths.database);
      lock.exec('BEGIN EXCLUSIVE');
      try {
        const refused = await run(child, 'locked', 'during-lock', '1');
        assert.equal(refused.status, 503, JSON.stringify(refused.json));
        assert.equal(refused.json.error.code, 'StoreBusy');
        assert.ok(refused.headers.get('retry-after'));
      } finally {
        lock.exec('ROLLBACK');
        lock.close();
      }
      const after = await run(child, 'locked', 'after-lock', '"ok"');
      assert.equal(after.json.result?.executionResult, 'ok', JSON.stringify(after.json));
      assert.equal((await call(child, 'GET', '/healthz')).status, 200);
      await settled(child, 'locked', 1);
      await assertNothingOrphaned(server.config);
    });

    it('the store’s disk full: requests fail with 507 ServerStorageFull, and work once space is freed', async () => {
      const server = serve('faults-full', { storeDiskMiB: 16 });
      const child = await server.start();
      await createPool(child, 'full');
      const filler = join(server.storeDisk!, 'filler');
      mkdirSync(filler);
      // Fill the disk to the last block: writes of any size fail from here on.
      try {
        for (let i = 0; ; i++) writeFileSync(join(filler, String(i)), Buffer.alloc(1024 * 1024));
      } catch {
        for (let i = 0; ; i++) {
          try {
            writeFileSync(join(filler, `small-${i}`), Buffer.alloc(4096));
          } catch {
            break;
          }
        }
      }
      const refused = await run(child, 'full', 'no-space', '1');
      assert.equal(refused.status, 507, JSON.stringify(refused.json));
      assert.equal(refused.json.error.code, 'ServerStorageFull');
      rmSync(filler, { recursive: true, force: true });
      const after = await run(child, 'full', 'space-again', '"ok"');
      assert.equal(after.json.result?.executionResult, 'ok', JSON.stringify(after.json));
      await settled(child, 'full', 1);
      await assertNothingOrphaned(server.config);
    });
  });
}
