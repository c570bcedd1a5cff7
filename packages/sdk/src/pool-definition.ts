/**
 * @module pool-definition
 * Pool settings in plain words, turned into the ARM `SessionPool` body the server (or Azure) takes.
 * The CLI's `sessionpool create` flags map onto these options one to one.
 */

import type { components } from './schema.gen.js';

export type SessionPool = components['schemas']['SessionPool'];

export interface PoolOptions {
  /** `PythonLTS` (default) or `Shell`. Cannot change once the pool exists. */
  containerType?: 'PythonLTS' | 'Shell';
  /** ARM location; Sandpool keeps it as a label. Default `local`. */
  location?: string;
  /** Sessions that may exist at once. Default 10. */
  maxSessions?: number;
  /** Prewarmed sandboxes kept ready. Default min(5, maxSessions). */
  readySessions?: number;
  /** `Timed` (default): a session ends `cooldownSeconds` after its last request. */
  lifecycle?: 'Timed' | 'OnContainerExit';
  /** Default 300. */
  cooldownSeconds?: number;
  /** For `OnContainerExit`: the longest a session lives. Default 3600. */
  maxAliveSeconds?: number;
  /** `EgressDisabled` (default) or `EgressEnabled`. */
  networkStatus?: 'EgressEnabled' | 'EgressDisabled';
  /** Cores per session (0.25 to 2). */
  cpu?: number;
  /** Memory per session, e.g. `0.5Gi`. */
  memory?: string;
  /** Secret values by name; write-only. */
  secrets?: Record<string, string>;
  /** PythonLTS: modules each interpreter imports before its session starts; absent, `['numpy', 'pandas']` where sandboxes are forked; `[]` for none. */
  preloadModules?: string[];
  tags?: Record<string, string>;
}

/** The `SessionPool` body for `options`; settings left out take the server's defaults. */
export function poolDefinition(options: PoolOptions = {}): SessionPool {
  const lifecycle = options.lifecycle ?? 'Timed';
  return {
    location: options.location ?? 'local',
    ...(options.tags && { tags: options.tags }),
    properties: {
      containerType: options.containerType ?? 'PythonLTS',
      poolManagementType: 'Dynamic',
      scaleConfiguration: {
        maxConcurrentSessions: options.maxSessions ?? 10,
        ...(options.readySessions !== undefined && { readySessionInstances: options.readySessions }),
      },
      dynamicPoolConfiguration: {
        lifecycleConfiguration:
          lifecycle === 'Timed'
            ? { lifecycleType: 'Timed', cooldownPeriodInSeconds: options.cooldownSeconds ?? 300 }
            : { lifecycleType: 'OnContainerExit', maxAlivePeriodInSeconds: options.maxAliveSeconds ?? 3600 },
      },
      sessionNetworkConfiguration: { status: options.networkStatus ?? 'EgressDisabled' },
      ...((options.cpu !== undefined || options.memory !== undefined) && {
        sessionResources: { cpu: options.cpu ?? 0.25, memory: options.memory ?? '0.5Gi' },
      }),
      ...(options.secrets && {
        secrets: Object.entries(options.secrets).map(([name, value]) => ({ name, value })),
      }),
      ...(options.preloadModules && { preloadModules: options.preloadModules }),
    },
  };
}
