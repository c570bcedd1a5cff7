/**
 * @module config
 * Sandpool's configuration, read in one place. Every value has a default that works on a fresh host
 * set up by scripts/setup.sh; each can be overridden through the environment variable named beside it.
 * Nothing else in the server reads `process.env`.
 */

import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

import type { RuntimeName } from './sandbox/driver.js';

export interface Config {
  /** SANDPOOL_HOME: images and sandbox state. */
  home: string;
  /** SANDPOOL_RUN_DIR: runtime state that must not outlive a reboot. */
  runDir: string;
  /** SANDPOOL_RUNTIME: the OCI runtime for new sandboxes. */
  runtime: RuntimeName;
  /** SANDPOOL_SECCOMP_PROFILE: the containers-format profile to derive the sandbox filter from. */
  seccompProfile: string;
  /** SANDPOOL_CONMON: the per-sandbox monitor binary. */
  conmonPath: string;
  /** SANDPOOL_ID_BASE: first host uid/gid handed to sandboxes (65536 per sandbox). */
  idBase: number;
  /** SANDPOOL_MAX_SANDBOXES: live sandboxes per host. */
  maxSandboxes: number;
  /** SANDPOOL_CGROUP_PARENT: cgroup directory that holds every sandbox's cgroup. */
  cgroupParent: string;
  /** Derived: where each piece lives. */
  paths: { stateDir: string; runtimeStateDir: string; pythonRootfs: string; pythonAgentDir: string };
}

export type LookupEnv = (name: string) => string | undefined;

export class ConfigError extends Error {}

const RUNTIMES: readonly RuntimeName[] = ['runc', 'crun', 'runsc'];
const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));

function integer(lookup: LookupEnv, name: string, fallback: number, min: number, max: number): number {
  const raw = lookup(name);
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new ConfigError(`${name} must be an integer from ${min} to ${max}, got ${JSON.stringify(raw)}`);
  }
  return value;
}

export function loadConfig(lookup: LookupEnv = (name) => process.env[name]): Config {
  const home = lookup('SANDPOOL_HOME') || '/var/lib/sandpool';
  const runDir = lookup('SANDPOOL_RUN_DIR') || '/run/sandpool';
  const runtime = (lookup('SANDPOOL_RUNTIME') || 'runc') as RuntimeName;
  if (!RUNTIMES.includes(runtime)) {
    throw new ConfigError(
      `SANDPOOL_RUNTIME must be one of ${RUNTIMES.join(', ')}, got ${JSON.stringify(runtime)}`,
    );
  }
  const cgroupParent = lookup('SANDPOOL_CGROUP_PARENT') || 'sandpool';
  if (!/^[a-z0-9][a-z0-9_-]*$/.test(cgroupParent)) {
    throw new ConfigError(
      `SANDPOOL_CGROUP_PARENT must be a single lower-case name, got ${JSON.stringify(cgroupParent)}`,
    );
  }
  return {
    home,
    runDir,
    runtime,
    seccompProfile: lookup('SANDPOOL_SECCOMP_PROFILE') || '/usr/share/containers/seccomp.json',
    conmonPath: lookup('SANDPOOL_CONMON') || '/usr/bin/conmon',
    // Above the ranges that useradd and subuid hand out, and 65536-aligned.
    idBase: integer(lookup, 'SANDPOOL_ID_BASE', 1_000_000_000, 65_536, 3_000_000_000),
    maxSandboxes: integer(lookup, 'SANDPOOL_MAX_SANDBOXES', 2000, 1, 16_000),
    cgroupParent,
    paths: {
      stateDir: join(home, 'sandboxes'),
      runtimeStateDir: join(runDir, 'runtime'),
      pythonRootfs: join(home, 'images', 'python-lts', 'rootfs'),
      pythonAgentDir: join(REPO_ROOT, 'interpreter', 'python'),
    },
  };
}
