/**
 * @module pool/pool-spec
 * A pool's template and scale settings in Sandpool's own terms, independent of any API generation's
 * JSON shape (api/ translates). Stored as JSON in the pool's row.
 */

import type { RuntimeName } from '../sandbox/driver.js';

/** What an egress allowlist entry may be (an IPv4 address, a CIDR or a domain name, with or without a port): the sandbox network's rule, which the API checks a pool's allowlist against. */
export { isAllowEntry } from '../sandbox/network/egress.js';

/**
 * `PythonLTS` runs Python in a persistent interpreter; `Shell` runs command lines (same image, same
 * agent); `NodeLTS` runs JavaScript in a persistent Node process (its own image and agent);
 * `CustomContainer` runs the pool's own image and proxies HTTP to it.
 */
export type ContainerType = InterpreterType | 'CustomContainer';
export type InterpreterType = 'PythonLTS' | 'NodeLTS' | 'Shell';

/** A health check of a custom container, with Kubernetes' semantics and Azure's bounds. */
export interface Probe {
  type: 'Liveness' | 'Startup';
  check:
    | { kind: 'httpGet'; path: string; port: number; headers: { name: string; value: string }[] }
    | { kind: 'tcpSocket'; port: number };
  initialDelaySeconds: number;
  periodSeconds: number;
  timeoutSeconds: number;
  failureThreshold: number;
}

export interface EnvVar {
  name: string;
  /** Either a literal value or the name of one of the pool's secrets. */
  value?: string;
  secretRef?: string;
}

/** What a custom container pool runs (Azure's `customContainerTemplate`, one container). */
export interface ContainerTemplate {
  name: string;
  /** The reference as the pool names it, tag or digest. */
  image: string;
  /** The manifest digest pulled at create/update; null until the pull succeeds. */
  imageDigest: string | null;
  /** Replaces the image's entrypoint when non-empty. */
  command: string[];
  /** Replaces the image's cmd when non-empty. */
  args: string[];
  env: EnvVar[];
  targetPort: number;
  probes: Probe[];
  registry: { server: string; username: string; passwordSecretRef: string } | null;
}

export type Lifecycle =
  { type: 'Timed'; cooldownSeconds: number } | { type: 'OnContainerExit'; maxAliveSeconds: number };

export interface PoolSpec {
  containerType: ContainerType;
  maxConcurrentSessions: number;
  readySessionInstances: number;
  lifecycle: Lifecycle;
  egress: 'EgressEnabled' | 'EgressDisabled';
  /** With EgressEnabled: the only destinations (CIDRs, domain names); empty means any public address. */
  egressAllow: string[];
  /** With EgressEnabled: the resolver its sessions' DNS goes to; the server's when absent. */
  egressDnsServer?: string;
  /** Cores per session. */
  cpu: number;
  /** Memory per session, bytes. */
  memoryBytes: number;
  runtime: RuntimeName;
  secrets: { name: string; value: string }[];
  /** Present exactly for CustomContainer pools. */
  container?: ContainerTemplate;
  /** Azure's platform MCP server for the pool (`mcpServerSettings`; Python and Shell pools). */
  mcpServer: { enabled: boolean; apiKeyDisabled: boolean };
  /**
   * PythonLTS: modules the interpreter imports before a session's first line (`preloadModules`),
   * so sessions start with them in `sys.modules`; empty imports nothing ahead; null, a pool that
   * named none, gets {@link preloadModules}' default.
   */
  preload: string[] | null;
}

/**
 * What a PythonLTS pool that names no `preloadModules` preloads where its sandboxes are forked from
 * a zygote: the data stack generated code reaches for first, imported once per node and shared by
 * every sandbox, so a session's `import pandas` costs nothing. A sandbox that starts its own
 * interpreter (egress, gVisor) preloads nothing by default: it would pay ~40 MiB and ~0.5 s alone.
 */
export const DEFAULT_PRELOAD: readonly string[] = ['numpy', 'pandas'];

/** The modules a sandbox of the pool imports ahead: the pool's list, or the default for its path. */
export function preloadModules(preload: string[] | null, forked: boolean): string[] {
  return preload ?? (forked ? [...DEFAULT_PRELOAD] : []);
}

/**
 * A PythonLTS pool with Azure's defaults where the reference gives them (the CLI's 10 sessions and
 * 300 s cooldown; its smallest session size), 2 ready sandboxes, no network.
 */
export function pythonPoolSpec(overrides: Partial<PoolSpec> = {}): PoolSpec {
  return {
    containerType: 'PythonLTS',
    maxConcurrentSessions: 10,
    readySessionInstances: 2,
    lifecycle: { type: 'Timed', cooldownSeconds: 300 },
    egress: 'EgressDisabled',
    egressAllow: [],
    cpu: 0.25,
    memoryBytes: 512 * 1024 * 1024,
    runtime: 'runc',
    secrets: [],
    mcpServer: { enabled: false, apiKeyDisabled: false },
    preload: null,
    ...overrides,
  };
}

/**
 * A pool's spec as its row stores it; rows written before a field existed get its default (a pool
 * stored before `preloadModules` existed keeps preloading nothing).
 */
export function storedSpec(row: { spec: unknown }): PoolSpec {
  const spec = row.spec as Omit<PoolSpec, 'egressAllow' | 'mcpServer' | 'preload'> &
    Partial<Pick<PoolSpec, 'egressAllow' | 'mcpServer' | 'preload'>>;
  return {
    ...spec,
    egressAllow: spec.egressAllow ?? [],
    mcpServer: spec.mcpServer ?? { enabled: false, apiKeyDisabled: false },
    preload: spec.preload === undefined ? [] : spec.preload,
  };
}

/** Why a session ended; stored with the session and its `ended` event. */
export type EndReason =
  | 'cooldown'
  | 'maxAlive'
  | 'containerExit'
  | 'stopped'
  | 'oom'
  | 'crashed'
  | 'unhealthy'
  | 'killed'
  | 'poolDeleted'
  | 'poolUpdated'
  | 'nodeDrained'
  /** A ready sandbox retired because its node held more than its share of the pool's ready target. */
  | 'rebalanced'
  /**
   * The host ran short of memory: the node ended the sandbox by policy (ready ones first, then the
   * longest idle sessions), or the kernel did when the sandboxes together reached their limit.
   */
  | 'hostMemoryPressure'
  | 'hostLost';

/** Whether two specs start identical sandboxes (a change replaces the warm set). */
export function sameTemplate(a: PoolSpec, b: PoolSpec): boolean {
  const template = (s: PoolSpec) =>
    JSON.stringify([
      s.containerType,
      s.egress,
      s.egressAllow,
      s.egressDnsServer,
      s.cpu,
      s.memoryBytes,
      s.runtime,
      s.secrets,
      s.container,
      s.preload,
    ]);
  return template(a) === template(b);
}

/** Whether the pool's sandboxes can start: a custom container's image must be pulled first. */
export function runnable(spec: PoolSpec): boolean {
  return spec.container === undefined || spec.container.imageDigest !== null;
}

/** Whether an update must pull again: the image or the credentials it is pulled with changed. */
export function needsPull(spec: PoolSpec, previous: PoolSpec | undefined): boolean {
  if (!spec.container) return false;
  const before = previous?.container;
  if (!before?.imageDigest) return true;
  const password = (s: PoolSpec) =>
    s.secrets.find((secret) => secret.name === s.container?.registry?.passwordSecretRef)?.value;
  return (
    before.image !== spec.container.image ||
    JSON.stringify(before.registry) !== JSON.stringify(spec.container.registry) ||
    password(previous!) !== password(spec)
  );
}
