import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { DEFAULT_RESOURCES, type SandboxSpec } from '../driver.js';
import { buildOciConfig, ID_RANGE_SIZE, SANDBOX_UID } from './oci-spec.js';

const spec: SandboxSpec = {
  id: 'abc',
  runtime: 'runc',
  rootfs: '/images/py/rootfs',
  command: ['/usr/bin/tini', '--', '/usr/bin/python3'],
  env: { MPLBACKEND: 'Agg' },
  resources: {
    ...DEFAULT_RESOURCES,
    cpu: 0.5,
    memoryBytes: 256 * 1024 * 1024,
    pids: 64,
    tmpBytes: 8 * 1024 * 1024,
  },
  readOnlyBinds: [{ source: '/srv/agent', destination: '/opt/sandpool/agent' }],
};
const host = {
  dataDir: '/state/abc/data',
  agentSocketDir: '/state/abc/agent',
  idBase: 2_000_000,
  cgroupsPath: '/sandpool/abc',
};
const seccomp = { defaultAction: 'SCMP_ACT_ERRNO', architectures: ['SCMP_ARCH_X86_64'], syscalls: [] };
const config = buildOciConfig(spec, host, seccomp);

describe('buildOciConfig', () => {
  it('runs the command as an unprivileged user with no capabilities and no_new_privs', () => {
    assert.deepEqual(config.process.args, spec.command);
    assert.equal(config.process.user.uid, SANDBOX_UID);
    assert.notEqual(config.process.user.uid, 0);
    for (const set of Object.values(config.process.capabilities)) assert.deepEqual(set, []);
    assert.equal(config.process.noNewPrivileges, true);
    assert.equal(config.process.terminal, false);
    assert.equal(config.process.cwd, '/mnt/data');
    assert.ok(config.process.env.includes('MPLBACKEND=Agg'));
  });

  it('mounts the image read-only and gives it no /sys', () => {
    assert.deepEqual(config.root, { path: '/images/py/rootfs', readonly: true });
    assert.ok(!config.mounts.some((m) => m.destination === '/sys' || m.destination.startsWith('/sys/')));
  });

  it('puts the sandbox in its own namespaces, a new empty network namespace included', () => {
    const types = config.linux.namespaces.map((n) => n.type).sort();
    assert.deepEqual(types, ['cgroup', 'ipc', 'mount', 'network', 'pid', 'user', 'uts']);
    assert.ok(
      config.linux.namespaces.every((n) => n.path === undefined),
      'no namespace is shared with the host',
    );
  });

  it('maps container ids onto this sandbox’s own host range', () => {
    assert.deepEqual(config.linux.uidMappings, [{ containerID: 0, hostID: 2_000_000, size: ID_RANGE_SIZE }]);
    assert.deepEqual(config.linux.gidMappings, config.linux.uidMappings);
  });

  it('applies memory (swap included), CPU and pids limits', () => {
    assert.deepEqual(config.linux.resources.memory, { limit: 256 * 1024 * 1024, swap: 256 * 1024 * 1024 });
    assert.deepEqual(config.linux.resources.cpu, { quota: 50_000, period: 100_000, shares: 262_144 });
    assert.deepEqual(config.linux.resources.pids, { limit: 64 });
    assert.deepEqual(config.linux.resources.devices, [{ allow: false, access: 'rwm' }]);
    assert.equal(config.linux.cgroupsPath, '/sandpool/abc');
  });

  it('caps every writable tmpfs and binds /mnt/data and the agent socket dir from the host', () => {
    const byDest = new Map(config.mounts.map((m) => [m.destination, m]));
    assert.ok(byDest.get('/tmp')?.options?.includes(`size=${8 * 1024 * 1024}`));
    for (const m of config.mounts.filter((m) => m.type === 'tmpfs')) {
      assert.ok(
        m.options?.some((o) => o.startsWith('size=')),
        `${m.destination} has a size cap`,
      );
    }
    assert.equal(byDest.get('/mnt/data')?.source, '/state/abc/data');
    assert.equal(byDest.get('/run/sandpool')?.source, '/state/abc/agent');
    assert.ok(byDest.get('/opt/sandpool/agent')?.options?.includes('ro'));
    for (const m of config.mounts.filter((m) => m.type === 'bind')) {
      assert.ok(
        m.options?.includes('nosuid') && m.options.includes('nodev'),
        `${m.destination} is nosuid,nodev`,
      );
    }
  });

  it('masks the /proc files that leak host state', () => {
    for (const path of ['/proc/kcore', '/proc/keys', '/proc/timer_list'])
      assert.ok(config.linux.maskedPaths.includes(path));
    assert.ok(config.linux.readonlyPaths.includes('/proc/sys'));
    assert.equal(config.linux.seccomp, seccomp);
  });
});
