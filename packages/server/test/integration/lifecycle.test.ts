/** How sandboxes end and what they leave behind: OOM, crashes, kills, destroy, server restarts. */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

import { AppError, ErrorCode } from '../../src/errors.js';
import { InterpreterInstance } from '../../src/pool/interpreter-instance.js';
import { DEFAULT_RESOURCES } from '../../src/sandbox/driver.js';
import { OciDriver } from '../../src/sandbox/oci/oci-driver.js';
import { driverContract } from '../driver-contract.js';
import {
  agentOptions,
  childrenOf,
  driverOptions,
  image,
  mountsBelow,
  processesInNetns,
  skipReason,
  startPython,
  testDriver,
  uniqueId,
  value,
} from './harness.js';

const MiB = 1024 * 1024;
const lostWith = (reason: string) => (error: unknown) =>
  error instanceof AppError && error.code === ErrorCode.SessionLost && error.details?.reason === reason;

describe('sandbox lifecycle (runc)', { skip: skipReason }, () => {
  const options = driverOptions('life');
  const driver = new OciDriver(options);

  it('reports a memory hog as oom', async () => {
    const session = await startPython(driver, 'oom', { memoryBytes: 128 * MiB });
    try {
      await assert.rejects(
        session.execute({ code: 'hog = b"x" * (512 * 1024 * 1024)', timeoutMs: 30_000, maxOutputChars: 100 }),
        lostWith('oom'),
      );
      assert.equal(session.endState?.status, 'exited');
      assert.equal(
        existsSync(join(process.cwd(), 'oom')),
        false,
        'conmon writes its oom marker in the sandbox dir',
      );
    } finally {
      await session.destroy();
    }
  });

  it('reports an interpreter that segfaults as crashed, with the signal', async () => {
    const session = await startPython(driver, 'segv');
    try {
      await assert.rejects(
        session.execute({
          code: 'import ctypes\nctypes.string_at(0)',
          timeoutMs: 10_000,
          maxOutputChars: 100,
        }),
        (error: unknown) => {
          assert.ok(lostWith('crashed')(error), String(error));
          assert.equal((error as AppError).details?.signal, 'SIGSEGV');
          return true;
        },
      );
    } finally {
      await session.destroy();
    }
  });

  it('reports a kill -9 from the host as killed', async () => {
    const session = await startPython(driver, 'kill9');
    try {
      const state = await driver.inspect(session.id);
      assert.equal(state.status, 'running');
      const [agentPid] = childrenOf((state as { pid: number }).pid);
      assert.ok(agentPid);
      const running = session.execute({
        code: 'import time\ntime.sleep(20)',
        timeoutMs: 30_000,
        maxOutputChars: 100,
      });
      await new Promise((resolve) => setTimeout(resolve, 200));
      process.kill(agentPid, 'SIGKILL');
      await assert.rejects(running, lostWith('killed'));
    } finally {
      await session.destroy();
    }
  });

  it('destroy leaves no process, cgroup, mount, network namespace, runtime state or directory', async () => {
    const session = await startPython(driver, 'trace');
    await value(
      session,
      'import subprocess\nsubprocess.Popen(["sleep", "300"])\nopen("/mnt/data/f", "w").write("x")',
    );
    const state = (await driver.inspect(session.id)) as { status: 'running'; pid: number };
    const netns = readlinkSync(`/proc/${state.pid}/ns/net`);
    const sandboxDir = join(options.stateDir, session.id);
    assert.ok(processesInNetns(netns).length >= 2);
    assert.ok((await driver.leftoverCgroups(session.id)).length > 0);
    assert.equal(mountsBelow(sandboxDir).length, 1);

    await session.destroy();

    assert.deepEqual(
      processesInNetns(netns),
      [],
      'every process of the sandbox is gone, and with them its network namespace',
    );
    assert.deepEqual(await driver.leftoverCgroups(session.id), []);
    assert.deepEqual(mountsBelow(sandboxDir), []);
    assert.equal(existsSync(sandboxDir), false);
    const runtimeList = execFileSync('/usr/sbin/runc', [...options.runtimes.runc!.args, 'list', '-q'], {
      encoding: 'utf8',
    });
    assert.ok(!runtimeList.split('\n').includes(session.id));
    assert.ok(!(await driver.list()).some((s) => s.id === session.id));
  });

  it('sandboxes outlive the server process: a new driver lists and reattaches them with their state', async () => {
    const id = uniqueId('restart');
    const fixture = fileURLToPath(new URL('./fixtures/leave-sandbox-running.ts', import.meta.url));
    const printed = execFileSync(
      process.execPath,
      ['--import', 'tsx', fixture, JSON.stringify(options), id],
      { encoding: 'utf8' },
    );
    assert.equal(printed.trim(), id);

    const restarted = new OciDriver(options);
    const found = (await restarted.list()).find((s) => s.id === id);
    assert.ok(found, 'the sandbox is listed after the restart');
    assert.equal((await restarted.inspect(id)).status, 'running');
    const session = await InterpreterInstance.attach(restarted, found, agentOptions);
    try {
      assert.deepEqual(
        await session.ping(),
        { id: 1, ok: true, executions: 1 },
        'the same interpreter, one execution in',
      );
      assert.equal(await value(session, 'survivor'), 'state from before the restart');
    } finally {
      await session.destroy();
    }
  });

  it('refuses a runtime that is not installed', async () => {
    const noRuntime = new OciDriver({
      ...options,
      runtimes: { runc: { path: '/nonexistent/runc', args: [] } },
    });
    await assert.rejects(
      noRuntime.create({
        id: uniqueId('nort'),
        runtime: 'runc',
        rootfs: image.rootfs,
        command: ['true'],
        env: {},
        resources: DEFAULT_RESOURCES,
        readOnlyBinds: [],
      }),
      (e: unknown) => e instanceof AppError && e.code === ErrorCode.RuntimeUnavailable,
    );
  });

  it('reports a start failure and cleans up after it', async () => {
    const id = uniqueId('badcmd');
    await assert.rejects(
      driver.create({
        id,
        runtime: 'runc',
        rootfs: image.rootfs,
        command: ['/does/not/exist'],
        env: {},
        resources: DEFAULT_RESOURCES,
        readOnlyBinds: [],
      }),
      (e: unknown) => e instanceof AppError && e.code === ErrorCode.SandboxStartFailed,
    );
    assert.equal(existsSync(join(options.stateDir, id)), false);
    assert.deepEqual(await driver.leftoverCgroups(id), []);
  });
});

if (!skipReason) {
  driverContract({
    name: 'oci (runc)',
    driver: testDriver('contract'),
    idPrefix: `contract-${process.pid}`,
    spec: {
      runtime: 'runc',
      rootfs: image.rootfs,
      command: ['/usr/bin/sleep', 'infinity'],
      env: {},
      resources: DEFAULT_RESOURCES,
      readOnlyBinds: [],
    },
  });
}
