import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { ConfigError } from '../../config.js';
import { MAX_HOST_ID } from './id-slots.js';
import { classifyExit, type OomEvidence } from './monitor.js';
import { OciDriver, defaultRuntimes } from './oci-driver.js';

describe('classifyExit', () => {
  const cases: [exitCode: number, oom: OomEvidence, expected: ReturnType<typeof classifyExit>][] = [
    [0, { kills: 0, notified: false, ownLimitReached: false }, 'exited'],
    [137, { kills: 0, notified: false, ownLimitReached: false }, 'killed'],
    [137, { kills: 1, notified: true, ownLimitReached: true }, 'oom'],
    [1, { kills: 2, notified: false, ownLimitReached: true }, 'oom'],
    // The cgroup is gone: conmon's note is all there is.
    [137, { kills: 0, notified: true, ownLimitReached: undefined }, 'oom'],
    // Killed by the OOM killer without ever reaching its own limit: the parent's limit was reached.
    [137, { kills: 1, notified: true, ownLimitReached: false }, 'hostOom'],
    // An ancestor's OOM notified every cgroup below it; this one survived it and crashed later.
    [139, { kills: 0, notified: true, ownLimitReached: false }, 'crashed'],
    [139, { kills: 0, notified: false, ownLimitReached: false }, 'crashed'],
    [134, { kills: 0, notified: false, ownLimitReached: undefined }, 'crashed'],
    [1, { kills: 0, notified: false, ownLimitReached: false }, 'crashed'],
  ];
  for (const [exitCode, oom, expected] of cases) {
    it(`exit ${exitCode} with ${JSON.stringify(oom)} is ${expected}`, () => {
      assert.equal(classifyExit(exitCode, oom), expected);
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
