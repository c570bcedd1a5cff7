import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { ConfigError } from '../../config.js';
import { MAX_HOST_ID } from './id-slots.js';
import { classifyExit } from './monitor.js';
import { OciDriver, defaultRuntimes } from './oci-driver.js';

describe('classifyExit', () => {
  const cases: [exitCode: number, oomKills: number, expected: ReturnType<typeof classifyExit>][] = [
    [0, 0, 'exited'],
    [137, 0, 'killed'],
    [137, 1, 'oom'],
    [1, 2, 'oom'],
    [139, 0, 'crashed'],
    [134, 0, 'crashed'],
    [1, 0, 'crashed'],
  ];
  for (const [exitCode, oomKills, expected] of cases) {
    it(`exit ${exitCode} with ${oomKills} OOM kills is ${expected}`, () => {
      assert.equal(classifyExit(exitCode, oomKills), expected);
    });
  }
});

describe('OciDriver host id ranges', () => {
  const options = {
    stateDir: '/nonexistent',
    runtimeStateDir: '/nonexistent',
    cgroupParent: 'x',
    seccompProfilePath: '/nonexistent',
    conmonPath: '/nonexistent',
    socatPath: '/nonexistent',
    egress: { subnet: '10.64.0.0/14', dnsServer: '192.0.2.53' },
    runtimes: defaultRuntimes('/nonexistent'),
  };

  it('refuses ranges that would pass the largest valid uid', () => {
    assert.throws(
      () => new OciDriver({ ...options, idBase: MAX_HOST_ID - 65_536, maxSandboxes: 2 }),
      ConfigError,
    );
  });

  it('refuses ranges that would include the host’s own users', () => {
    assert.throws(() => new OciDriver({ ...options, idBase: 0, maxSandboxes: 1 }), ConfigError);
  });
});
