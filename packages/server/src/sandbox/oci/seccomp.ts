/**
 * @module sandbox/oci/seccomp
 * Turns the containers ecosystem's default seccomp profile (`/usr/share/containers/seccomp.json`,
 * Debian's golang-github-containers-common) into the OCI runtime-spec form for one architecture's
 * native ABI and one capability set. The syscall list is never written by hand: the profile is the source.
 */

/** A rule as the containers profile writes it: conditional on architecture, capabilities and kernel. */
interface ProfileRule {
  names?: string[];
  name?: string;
  action: string;
  errnoRet?: number;
  args?: OciSeccompArg[] | null;
  includes?: { arches?: string[]; caps?: string[]; minKernel?: string };
  excludes?: { arches?: string[]; caps?: string[] };
}

export interface ContainersSeccompProfile {
  defaultAction: string;
  defaultErrnoRet?: number;
  archMap?: { architecture: string; subArchitectures?: string[] }[];
  syscalls: ProfileRule[];
}

export interface OciSeccompArg {
  index: number;
  value: number;
  valueTwo?: number;
  op: string;
}

export interface OciSeccomp {
  defaultAction: string;
  defaultErrnoRet?: number;
  architectures: string[];
  syscalls: { names: string[]; action: string; errnoRet?: number; args?: OciSeccompArg[] }[];
}

export interface SeccompTarget {
  /** Node's `process.arch` naming: x64, arm64. */
  nodeArch: string;
  /** Capabilities the sandbox keeps; rules that need others are dropped. */
  capabilities: readonly string[];
  /** Running kernel as `major.minor`, for `minKernel` conditions. */
  kernel: string;
}

/** The profile's own arch names (Go's) and libseccomp's for each Node arch. */
const ARCHES: Record<string, { go: string[]; scmp: string }> = {
  x64: { go: ['amd64'], scmp: 'SCMP_ARCH_X86_64' },
  arm64: { go: ['arm64'], scmp: 'SCMP_ARCH_AARCH64' },
};

export class UnsupportedArchitectureError extends Error {}

function kernelAtLeast(kernel: string, minimum: string): boolean {
  const [major = 0, minor = 0] = kernel.split('.').map(Number);
  const [wantMajor = 0, wantMinor = 0] = minimum.split('.').map(Number);
  return major > wantMajor || (major === wantMajor && minor >= wantMinor);
}

function applies(rule: ProfileRule, goArches: string[], target: SeccompTarget): boolean {
  const { includes = {}, excludes = {} } = rule;
  if (includes.arches?.length && !includes.arches.some((a) => goArches.includes(a))) return false;
  if (excludes.arches?.some((a) => goArches.includes(a))) return false;
  if (includes.caps?.length && !includes.caps.every((c) => target.capabilities.includes(c))) return false;
  if (excludes.caps?.some((c) => target.capabilities.includes(c))) return false;
  if (includes.minKernel && !kernelAtLeast(target.kernel, includes.minKernel)) return false;
  return true;
}

/** Every CLONE_NEW* flag: mount, cgroup, uts, ipc, user, pid, net (and time, for unshare). */
const CLONE_NAMESPACE_FLAGS = 0x7e020000;
const CLONE_NEWTIME = 0x80;
const ENOSYS = 38;
const EPERM = 1;

/**
 * Forbids creating namespaces from inside the sandbox. The containers profile allows `clone`,
 * `clone3` and `unshare` with any flags and leaves the check to capabilities, but an unprivileged
 * process may still create a user namespace, and with it reach kernel code (netfilter, mounts of
 * filesystem types) that is otherwise closed to it. Docker's default profile draws the same line:
 * `clone`/`unshare` only without namespace flags; `clone3`, whose flags seccomp cannot read, fails
 * with ENOSYS so that libc falls back to `clone`.
 */
export function forbidNamespaceCreation(seccomp: OciSeccomp): OciSeccomp {
  return {
    ...seccomp,
    syscalls: [
      ...withoutRulesFor(seccomp, ['clone', 'clone3', 'unshare']),
      {
        names: ['clone'],
        action: 'SCMP_ACT_ALLOW',
        args: [{ index: 0, value: CLONE_NAMESPACE_FLAGS, valueTwo: 0, op: 'SCMP_CMP_MASKED_EQ' }],
      },
      {
        names: ['unshare'],
        action: 'SCMP_ACT_ALLOW',
        args: [
          { index: 0, value: CLONE_NAMESPACE_FLAGS | CLONE_NEWTIME, valueTwo: 0, op: 'SCMP_CMP_MASKED_EQ' },
        ],
      },
      { names: ['clone3'], action: 'SCMP_ACT_ERRNO', errnoRet: ENOSYS },
    ],
  };
}

/**
 * Refuses the kernel keyring (`keyctl`, `add_key`, `request_key`) with EPERM, as Docker's default
 * profile does. The containers profile allows it; keyrings are keyed by host uid, which is unique
 * per sandbox here, but the keyring code is a long record of kernel bugs reachable without privilege
 * and no interpreter or server workload needs it.
 */
export function forbidKernelKeyring(seccomp: OciSeccomp): OciSeccomp {
  const keyring = ['keyctl', 'add_key', 'request_key'];
  return {
    ...seccomp,
    syscalls: [
      ...withoutRulesFor(seccomp, keyring),
      { names: keyring, action: 'SCMP_ACT_ERRNO', errnoRet: EPERM },
    ],
  };
}

/** The profile's rules with `names` taken out of each (and rules left empty dropped). */
function withoutRulesFor(seccomp: OciSeccomp, names: string[]): OciSeccomp['syscalls'] {
  return seccomp.syscalls
    .map((rule) => ({ ...rule, names: rule.names.filter((n) => !names.includes(n)) }))
    .filter((rule) => rule.names.length > 0);
}

export function toOciSeccomp(profile: ContainersSeccompProfile, target: SeccompTarget): OciSeccomp {
  const arch = ARCHES[target.nodeArch];
  if (!arch) throw new UnsupportedArchitectureError(`no seccomp architecture mapping for ${target.nodeArch}`);
  const syscalls = profile.syscalls
    .filter((rule) => applies(rule, arch.go, target))
    .map((rule) => {
      const names = rule.names ?? (rule.name ? [rule.name] : []);
      return {
        names,
        action: rule.action,
        ...(rule.errnoRet !== undefined ? { errnoRet: rule.errnoRet } : {}),
        ...(rule.args?.length ? { args: rule.args } : {}),
      };
    })
    .filter((rule) => rule.names.length > 0);
  return {
    defaultAction: profile.defaultAction,
    ...(profile.defaultErrnoRet !== undefined ? { defaultErrnoRet: profile.defaultErrnoRet } : {}),
    // Only the native ABI: the filter admits no syscall made through a compat ABI (32-bit x86, x32,
    // arm32), a door the images here never need. It also shortens the filter the runtime compiles
    // at every start.
    architectures: [arch.scmp],
    syscalls,
  };
}
