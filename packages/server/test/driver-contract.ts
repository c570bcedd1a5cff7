/**
 * @module sandbox/driver-contract
 * The behaviour every {@link SandboxDriver} promises, as one node:test suite. The fake driver and the
 * OCI driver both run it, so upper-layer tests written against the fake hold for the real thing.
 */

import assert from 'node:assert/strict';
import { describe, it, after } from 'node:test';

import { AppError, ErrorCode } from '../src/errors.js';
import type { SandboxDriver, SandboxSpec } from '../src/sandbox/driver.js';

export interface ContractSubject {
  name: string;
  driver: SandboxDriver;
  /** A spec whose process runs until killed; the suite sets `id`. */
  spec: Omit<SandboxSpec, 'id'>;
  /** A prefix that keeps this run's ids apart from other runs on the same host. */
  idPrefix: string;
}

async function rejectsWith(promise: Promise<unknown>, code: ErrorCode): Promise<void> {
  await assert.rejects(promise, (error: unknown) => error instanceof AppError && error.code === code);
}

export function driverContract(subject: ContractSubject): void {
  const { driver, spec, idPrefix } = subject;
  const created: string[] = [];
  const id = (suffix: string) => {
    const value = `${idPrefix}-${suffix}`;
    created.push(value);
    return value;
  };

  describe(`SandboxDriver contract: ${subject.name}`, () => {
    after(async () => {
      for (const sandboxId of created) await driver.destroy(sandboxId);
    });

    it('creates a running sandbox that list() reports and destroy() removes', async () => {
      const sandboxId = id('lifecycle');
      const sandbox = await driver.create({ ...spec, id: sandboxId });
      assert.equal(sandbox.id, sandboxId);
      const state = await driver.inspect(sandboxId);
      assert.equal(state.status, 'running');
      assert.ok((await driver.list()).some((s) => s.id === sandboxId));
      await driver.destroy(sandboxId);
      assert.ok(!(await driver.list()).some((s) => s.id === sandboxId));
      await rejectsWith(driver.inspect(sandboxId), ErrorCode.SandboxNotFound);
    });

    it('reports the resources a running sandbox used, and none once it is destroyed', async () => {
      const sandboxId = id('usage');
      await driver.create({ ...spec, id: sandboxId });
      const usage = await driver.usage(sandboxId);
      assert.ok(usage, 'a running sandbox has usage');
      assert.ok(usage.cpuSeconds >= 0 && usage.memoryBytes >= 0);
      assert.ok(usage.peakMemoryBytes >= usage.memoryBytes);
      await driver.destroy(sandboxId);
      assert.equal(await driver.usage(sandboxId), undefined);
    });

    it('refuses a second sandbox with the same id', async () => {
      const sandboxId = id('twice');
      await driver.create({ ...spec, id: sandboxId });
      await rejectsWith(driver.create({ ...spec, id: sandboxId }), ErrorCode.SandboxAlreadyExists);
      assert.equal((await driver.inspect(sandboxId)).status, 'running');
    });

    it('refuses ids that are not lower-case names', async () => {
      for (const bad of ['', 'Upper', '../escape', 'a'.repeat(64), 'with space']) {
        await rejectsWith(driver.create({ ...spec, id: bad }), ErrorCode.InvalidSandboxSpec);
      }
    });

    it('reports a SIGKILL from outside as killed', async () => {
      const sandboxId = id('killed');
      await driver.create({ ...spec, id: sandboxId });
      await driver.signal(sandboxId, 'SIGKILL');
      let state = await driver.inspect(sandboxId);
      for (let i = 0; state.status === 'running' && i < 200; i++) {
        await new Promise((resolve) => setTimeout(resolve, 10));
        state = await driver.inspect(sandboxId);
      }
      assert.deepEqual(state, { status: 'exited', cause: 'killed', exitCode: 137, signal: 'SIGKILL' });
      await rejectsWith(driver.signal(sandboxId, 'SIGINT'), ErrorCode.SandboxNotFound);
      await rejectsWith(driver.setCpuLimit(sandboxId, 0.5), ErrorCode.SandboxNotFound);
    });

    it('destroys an unknown id without error (destroy is idempotent)', async () => {
      await driver.destroy(`${idPrefix}-never-created`);
    });
  });
}
