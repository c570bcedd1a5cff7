import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { ConfigError, loadConfig } from './config.js';

const env = (values: Record<string, string>) => (name: string) => values[name];

describe('loadConfig', () => {
  it('has working defaults', () => {
    const config = loadConfig(env({}));
    assert.equal(config.runtime, 'runc');
    assert.equal(config.paths.stateDir, '/var/lib/sandpool/sandboxes');
    assert.equal(config.paths.pythonRootfs, '/var/lib/sandpool/images/python-lts/rootfs');
    assert.ok(config.paths.pythonAgentDir.endsWith('/interpreter/python'));
  });

  it('reads overrides from the environment', () => {
    const config = loadConfig(
      env({ SANDPOOL_HOME: '/srv/sp', SANDPOOL_RUNTIME: 'runsc', SANDPOOL_MAX_SANDBOXES: '10' }),
    );
    assert.equal(config.paths.stateDir, '/srv/sp/sandboxes');
    assert.equal(config.runtime, 'runsc');
    assert.equal(config.maxSandboxes, 10);
  });

  it('rejects bad values with the variable’s name', () => {
    assert.throws(
      () => loadConfig(env({ SANDPOOL_RUNTIME: 'docker' })),
      (e: unknown) => e instanceof ConfigError && e.message.includes('SANDPOOL_RUNTIME'),
    );
    assert.throws(() => loadConfig(env({ SANDPOOL_MAX_SANDBOXES: '1.5' })), ConfigError);
    assert.throws(() => loadConfig(env({ SANDPOOL_CGROUP_PARENT: '../x' })), ConfigError);
  });
});
