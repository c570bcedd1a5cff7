/** gVisor's runsc as the stronger-isolation runtime: the same agent, behind a user-space kernel. */
import assert from 'node:assert/strict';
import { existsSync, statSync } from 'node:fs';
import { describe, it } from 'node:test';

import { InterpreterInstance } from '../../src/pool/interpreter-instance.js';
import { DEFAULT_RESOURCES } from '../../src/sandbox/driver.js';
import { agentOptions, image, skipReason, testDriver, uniqueId, value } from './harness.js';

const runscSkip =
  skipReason ??
  (existsSync('/usr/bin/runsc') ? undefined : 'runsc is not installed (scripts/setup.sh installs it)');

describe('Python interpreter under gVisor (runsc)', { skip: runscSkip }, () => {
  const driver = testDriver('gvisor');

  it('runs the agent behind gVisor’s kernel, interrupts overruns, and cleans up', async () => {
    const session = await InterpreterInstance.start(driver, {
      id: uniqueId('gvisor'),
      runtime: 'runsc',
      image,
      resources: DEFAULT_RESOURCES,
      agent: agentOptions,
    });
    try {
      assert.equal(
        await value(session, 'import platform\nplatform.release()'),
        '4.4.0',
        'uname is gVisor’s, not the host’s',
      );
      assert.equal(
        await value(session, 'import os\nx = 20\n(os.getuid(), os.getcwd())'),
        "(1000, '/mnt/data')",
      );
      assert.equal(statSync(session.sandbox.dataDir).mode & 0o777, 0o700, 'the session’s files are its own');
      const outcome = await session.execute({
        code: 'while True: x += 1',
        timeoutMs: 300,
        maxOutputChars: 100,
      });
      assert.equal(outcome.interrupted, true);
      assert.ok(((await value(session, 'x')) as number) > 20);
    } finally {
      await session.destroy();
    }
    assert.deepEqual(await driver.leftoverCgroups(session.id), [], 'runsc’s cgroups are removed too');
  });
});
