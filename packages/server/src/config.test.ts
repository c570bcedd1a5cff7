import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { readFileSync } from 'node:fs';

import { ConfigError, loadConfig, settingsTable } from './config.js';

const env = (values: Record<string, string>) => (name: string) => values[name];

describe('loadConfig', () => {
  it('has working defaults', () => {
    const config = loadConfig({ lookupEnv: env({}) });
    assert.equal(config.runtime, 'runc');
    assert.equal(config.port, 8443);
    assert.equal(config.poolFullStatus, 429);
    assert.deepEqual(config.audiences, ['https://dynamicsessions.io', 'https://acasessions.io']);
    assert.equal(config.paths.stateDir, '/var/lib/sandpool/sandboxes');
    assert.equal(config.paths.database, '/var/lib/sandpool/sandpool.db');
    assert.equal(config.paths.pythonRootfs, '/var/lib/sandpool/images/python-lts/rootfs');
    assert.ok(config.paths.pythonAgentDir.endsWith('/interpreter/python'));
  });

  it('sizes the node from the host unless told: 16 reserved cores per core, four times the sandboxes’ memory', () => {
    const host = { cores: 2, memoryBytes: 24 * 1024 ** 3 };
    const derived = loadConfig({ lookupEnv: env({}), host });
    assert.equal(derived.nodeCpu, 32);
    assert.equal(derived.sandboxMemoryBytes, 23 * 1024 ** 3);
    assert.equal(derived.nodeMemoryGib, 92);
    const told = loadConfig({
      lookupEnv: env({ SANDPOOL_NODE_CPU: '1.5', SANDPOOL_NODE_MEMORY_GIB: '24' }),
      host,
    });
    assert.equal(told.nodeCpu, 1.5);
    assert.equal(told.nodeMemoryGib, 24);
    const reserved = loadConfig({
      lookupEnv: env({ SANDPOOL_MEMORY_RESERVE_GIB: '4', SANDPOOL_MEMORY_OVERCOMMIT: '1.5' }),
      host,
    });
    assert.equal(reserved.sandboxMemoryBytes, 20 * 1024 ** 3);
    assert.equal(reserved.nodeMemoryGib, 30);
  });

  it('refuses a reserve that leaves the sandboxes less than a quarter GiB', () => {
    const host = { cores: 2, memoryBytes: 2 * 1024 ** 3 };
    assert.throws(
      () => loadConfig({ lookupEnv: env({ SANDPOOL_MEMORY_RESERVE_GIB: '1.9' }), host }),
      (error: unknown) =>
        error instanceof ConfigError &&
        /SANDPOOL_MEMORY_RESERVE_GIB leaves the sandboxes 0\.10 GiB/.test(error.message),
    );
  });

  it('reads overrides from the environment', () => {
    const config = loadConfig({
      lookupEnv: env({ SANDPOOL_HOME: '/srv/sp', SANDPOOL_RUNTIME: 'runsc', SANDPOOL_MAX_SANDBOXES: '10' }),
    });
    assert.equal(config.paths.stateDir, '/srv/sp/sandboxes');
    assert.equal(config.runtime, 'runsc');
    assert.equal(config.maxSandboxes, 10);
  });

  it('ranks flags over the environment over the file', () => {
    const file = JSON.stringify({ port: 1000, host: '0.0.0.0', logLevel: 'warn' });
    const config = loadConfig({
      argv: ['--port', '3000', '--config', '/etc/sp.json'],
      lookupEnv: env({ SANDPOOL_PORT: '2000', SANDPOOL_HOST: '::1', SANDPOOL_POOL_FULL_STATUS: '404' }),
      readFile: (path) => (path === '/etc/sp.json' ? file : ''),
    });
    assert.equal(config.port, 3000);
    assert.equal(config.host, '::1');
    assert.equal(config.logLevel, 'warn');
    assert.equal(config.poolFullStatus, 404);
  });

  it('takes lists as JSON', () => {
    const issuers = [{ issuer: 'https://idp', jwksUri: 'https://idp/keys' }];
    const config = loadConfig({ lookupEnv: env({ SANDPOOL_OIDC_ISSUERS: JSON.stringify(issuers) }) });
    assert.deepEqual(config.oidcIssuers, [{ ...issuers[0], rolesClaim: 'roles' }]);
  });

  it('rejects bad values naming where they came from', () => {
    const rejects = (sources: Parameters<typeof loadConfig>[0], text: string) =>
      assert.throws(
        () => loadConfig({ lookupEnv: env({}), ...sources }),
        (e: unknown) => e instanceof ConfigError && e.message.includes(text),
      );
    rejects({ lookupEnv: env({ SANDPOOL_RUNTIME: 'docker' }) }, 'SANDPOOL_RUNTIME');
    rejects({ lookupEnv: env({ SANDPOOL_MAX_SANDBOXES: '1.5' }) }, 'SANDPOOL_MAX_SANDBOXES');
    rejects({ lookupEnv: env({ SANDPOOL_CGROUP_PARENT: '../x' }) }, 'SANDPOOL_CGROUP_PARENT');
    rejects({ argv: ['--port', 'http'] }, '--port');
    rejects({ argv: ['--prot', '1'] }, 'unknown option --prot');
    rejects({ argv: ['--port'] }, 'expected --name value');
    rejects({ lookupEnv: env({ SANDPOOL_AUDIENCES: 'x' }) }, 'JSON array');
    rejects({ argv: ['--config', '/x'], readFile: () => '{"colour":1}' }, 'unknown setting colour');
  });
});

describe('docs/settings.md', () => {
  it('documents every setting as the schema describes it', () => {
    const page = readFileSync(new URL('../../../docs/settings.md', import.meta.url), 'utf8');
    for (const row of settingsTable()) {
      assert.ok(page.includes(row), `docs/settings.md lacks the row (regenerate the table):\n${row}`);
    }
  });
});
