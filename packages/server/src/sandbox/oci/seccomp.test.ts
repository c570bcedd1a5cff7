import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';

import {
  forbidKernelKeyring,
  forbidNamespaceCreation,
  toOciSeccomp,
  UnsupportedArchitectureError,
  type ContainersSeccompProfile,
} from './seccomp.js';

const profile: ContainersSeccompProfile = {
  defaultAction: 'SCMP_ACT_ERRNO',
  defaultErrnoRet: 38,
  archMap: [{ architecture: 'SCMP_ARCH_X86_64', subArchitectures: ['SCMP_ARCH_X86', 'SCMP_ARCH_X32'] }],
  syscalls: [
    { names: ['read', 'write'], action: 'SCMP_ACT_ALLOW' },
    { names: ['arch_prctl'], action: 'SCMP_ACT_ALLOW', includes: { arches: ['amd64', 'x32'] } },
    { names: ['x86_only'], action: 'SCMP_ACT_ALLOW', includes: { arches: ['x86'] } },
    { names: ['s390_pci_mmio_read'], action: 'SCMP_ACT_ALLOW', includes: { arches: ['s390x'] } },
    { names: ['bpf'], action: 'SCMP_ACT_ALLOW', includes: { caps: ['CAP_SYS_ADMIN'] } },
    { names: ['bpf'], action: 'SCMP_ACT_ERRNO', errnoRet: 1, excludes: { caps: ['CAP_SYS_ADMIN'] } },
    { names: ['new_thing'], action: 'SCMP_ACT_ALLOW', includes: { minKernel: '7.2' } },
    { names: ['personality'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: 8, op: 'SCMP_CMP_EQ' }] },
  ],
};

describe('toOciSeccomp', () => {
  const target = { nodeArch: 'x64', capabilities: [], kernel: '6.18' };

  it('keeps unconditional rules, this architecture, and rules for the missing capabilities', () => {
    const oci = toOciSeccomp(profile, target);
    assert.deepEqual(oci.architectures, ['SCMP_ARCH_X86_64'], 'compat ABIs are not admitted');
    assert.equal(oci.defaultAction, 'SCMP_ACT_ERRNO');
    assert.equal(oci.defaultErrnoRet, 38);
    assert.deepEqual(oci.syscalls, [
      { names: ['read', 'write'], action: 'SCMP_ACT_ALLOW' },
      { names: ['arch_prctl'], action: 'SCMP_ACT_ALLOW' },
      { names: ['bpf'], action: 'SCMP_ACT_ERRNO', errnoRet: 1 },
      { names: ['personality'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: 8, op: 'SCMP_CMP_EQ' }] },
    ]);
  });

  it('keeps capability-gated rules only when the sandbox holds the capability', () => {
    const oci = toOciSeccomp(profile, { ...target, capabilities: ['CAP_SYS_ADMIN'] });
    const bpf = oci.syscalls.filter((r) => r.names.includes('bpf'));
    assert.deepEqual(bpf, [{ names: ['bpf'], action: 'SCMP_ACT_ALLOW' }]);
  });

  it('honours minKernel', () => {
    const oci = toOciSeccomp(profile, { ...target, kernel: '7.3' });
    assert.ok(oci.syscalls.some((r) => r.names.includes('new_thing')));
  });

  it('refuses an architecture it has no mapping for', () => {
    assert.throws(() => toOciSeccomp(profile, { ...target, nodeArch: 'mips' }), UnsupportedArchitectureError);
  });

  it('derives a filter from the installed containers profile that denies kernel-module and bpf calls', (t) => {
    let installed: ContainersSeccompProfile;
    try {
      installed = JSON.parse(
        readFileSync('/usr/share/containers/seccomp.json', 'utf8'),
      ) as ContainersSeccompProfile;
    } catch {
      t.skip('golang-github-containers-common is not installed (scripts/setup.sh installs it)');
      return;
    }
    const oci = toOciSeccomp(installed, target);
    const allowed = new Set(
      oci.syscalls.filter((r) => r.action === 'SCMP_ACT_ALLOW' && !r.args).flatMap((r) => r.names),
    );
    for (const denied of ['init_module', 'finit_module', 'bpf', 'kexec_load', 'open_by_handle_at', 'iopl']) {
      assert.ok(!allowed.has(denied), `${denied} must not be allowed without capabilities`);
    }
    for (const needed of ['read', 'clone', 'execve', 'mmap', 'arch_prctl'])
      assert.ok(allowed.has(needed), needed);
  });

  it('forbids namespace creation: clone and unshare only without CLONE_NEW* flags, clone3 refused', () => {
    const base = {
      defaultAction: 'SCMP_ACT_ERRNO',
      architectures: ['SCMP_ARCH_X86_64'],
      syscalls: [
        { names: ['read', 'clone', 'clone3', 'unshare'], action: 'SCMP_ACT_ALLOW' },
        { names: ['clone3'], action: 'SCMP_ACT_ALLOW' },
      ],
    };
    const hardened = forbidNamespaceCreation(base);
    assert.deepEqual(hardened.syscalls, [
      { names: ['read'], action: 'SCMP_ACT_ALLOW' },
      {
        names: ['clone'],
        action: 'SCMP_ACT_ALLOW',
        args: [{ index: 0, value: 0x7e020000, valueTwo: 0, op: 'SCMP_CMP_MASKED_EQ' }],
      },
      {
        names: ['unshare'],
        action: 'SCMP_ACT_ALLOW',
        args: [{ index: 0, value: 0x7e020080, valueTwo: 0, op: 'SCMP_CMP_MASKED_EQ' }],
      },
      { names: ['clone3'], action: 'SCMP_ACT_ERRNO', errnoRet: 38 },
    ]);
  });

  it('refuses the kernel keyring with EPERM, whatever the profile allowed', () => {
    const hardened = forbidKernelKeyring({
      defaultAction: 'SCMP_ACT_ERRNO',
      architectures: ['SCMP_ARCH_X86_64'],
      syscalls: [
        { names: ['read', 'keyctl', 'add_key'], action: 'SCMP_ACT_ALLOW' },
        { names: ['request_key'], action: 'SCMP_ACT_ALLOW' },
      ],
    });
    assert.deepEqual(hardened.syscalls, [
      { names: ['read'], action: 'SCMP_ACT_ALLOW' },
      { names: ['keyctl', 'add_key', 'request_key'], action: 'SCMP_ACT_ERRNO', errnoRet: 1 },
    ]);
  });
});
