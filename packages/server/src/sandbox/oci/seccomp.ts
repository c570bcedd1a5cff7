/**
 * @module sandbox/oci/seccomp
 * Turns the containers ecosystem's default seccomp profile (`/usr/share/containers/seccomp.json`,
 * Debian's golang-github-containers-common) into the OCI runtime-spec form for one architecture and
 * one capability set. The syscall list is never written by hand: the profile is the source.
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
  x64: { go: ['amd64', 'x32', 'x86', '386'], scmp: 'SCMP_ARCH_X86_64' },
  arm64: { go: ['arm64', 'arm'], scmp: 'SCMP_ARCH_AARCH64' },
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

export function toOciSeccomp(profile: ContainersSeccompProfile, target: SeccompTarget): OciSeccomp {
  const arch = ARCHES[target.nodeArch];
  if (!arch) throw new UnsupportedArchitectureError(`no seccomp architecture mapping for ${target.nodeArch}`);
  const entry = profile.archMap?.find((a) => a.architecture === arch.scmp);
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
    architectures: [arch.scmp, ...(entry?.subArchitectures ?? [])],
    syscalls,
  };
}
