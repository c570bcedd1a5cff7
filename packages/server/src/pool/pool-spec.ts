/**
 * @module pool/pool-spec
 * A pool's template and scale settings in Sandpool's own terms, independent of any API generation's
 * JSON shape (api/ translates). Stored as JSON in the pool's row.
 */

import type { RuntimeName } from '../sandbox/driver.js';

/** `PythonLTS` runs Python in a persistent interpreter; `Shell` runs command lines (same image, same agent). */
export type ContainerType = 'PythonLTS' | 'Shell';

export type Lifecycle =
  { type: 'Timed'; cooldownSeconds: number } | { type: 'OnContainerExit'; maxAliveSeconds: number };

export interface PoolSpec {
  containerType: ContainerType;
  maxConcurrentSessions: number;
  readySessionInstances: number;
  lifecycle: Lifecycle;
  egress: 'EgressEnabled' | 'EgressDisabled';
  /** Cores per session. */
  cpu: number;
  /** Memory per session, bytes. */
  memoryBytes: number;
  runtime: RuntimeName;
  secrets: { name: string; value: string }[];
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
    cpu: 0.25,
    memoryBytes: 512 * 1024 * 1024,
    runtime: 'runc',
    secrets: [],
    ...overrides,
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
  | 'killed'
  | 'poolDeleted'
  | 'poolUpdated'
  | 'hostLost';

/** Whether two specs start identical sandboxes (a change replaces the warm set). */
export function sameTemplate(a: PoolSpec, b: PoolSpec): boolean {
  const template = (s: PoolSpec) =>
    JSON.stringify([s.containerType, s.egress, s.cpu, s.memoryBytes, s.runtime, s.secrets]);
  return template(a) === template(b);
}
