import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { AppError, ErrorCode } from '../errors.js';
import type { SandboxDriver } from '../sandbox/driver.js';
import { HostLauncher, sessionResources, type HostLauncherOptions } from './launcher.js';

const MiB = 1024 * 1024;
const limits = { pids: 256, dataBytes: 1024 * MiB, tmpBytes: 256 * MiB };

describe('sessionResources', () => {
  it('keeps /mnt/data and /tmp within a share of memory, since tmpfs pages are memory', () => {
    const small = sessionResources({ cpu: 0.25, memoryBytes: 512 * MiB }, limits);
    assert.deepEqual(small, {
      cpu: 0.25,
      memoryBytes: 512 * MiB,
      pids: 256,
      dataBytes: 256 * MiB,
      tmpBytes: 128 * MiB,
    });
  });

  it('uses the host limits once memory is large enough', () => {
    const large = sessionResources({ cpu: 2, memoryBytes: 4096 * MiB }, limits);
    assert.equal(large.dataBytes, 1024 * MiB);
    assert.equal(large.tmpBytes, 256 * MiB);
  });
});

describe('HostLauncher.attachAll', () => {
  it('reports a create that died before writing its record as ended, so the caller removes it', async () => {
    const driver = {
      list: () => Promise.resolve([{ id: 'half-made', labels: {} }]),
      inspect: () =>
        Promise.reject(new AppError(ErrorCode.SandboxNotFound, 'sandbox half-made does not exist')),
    } as unknown as SandboxDriver;
    const launcher = new HostLauncher(driver, {} as HostLauncherOptions);
    assert.deepEqual([...(await launcher.attachAll())], [['half-made', { status: 'unknown' }]]);
  });
});
