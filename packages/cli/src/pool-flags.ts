/**
 * @module pool-flags
 * `sessionpool create|update` flags, as `az containerapp sessionpool` spells them, turned into the
 * ARM body (create) or JSON merge patch (update). Pure, so every flag's mapping is unit-tested.
 */

import { poolDefinition, type SessionPool } from '@sandpool/sdk';

import { UsageError } from './failure.js';

export interface PoolFlags {
  location?: string;
  containerType?: string;
  maxSessions?: number;
  readySessions?: number;
  cooldownPeriod?: number;
  lifecycleType?: string;
  maxAlivePeriod?: number;
  networkStatus?: string;
  cpu?: number;
  memory?: string;
  secrets?: string[];
  envVars?: string[];
  image?: string;
  containerName?: string;
  command?: string[];
  args?: string[];
  targetPort?: number;
  registryServer?: string;
  registryUsername?: string;
  registryPassword?: string;
  tags?: string[];
  preloadModules?: string[];
}

const CONTAINER_TYPES = ['PythonLTS', 'Shell', 'NodeLTS', 'CustomContainer'] as const;

/** `k=v` pairs, as az takes `--secrets` and `--tags`. */
export function keyValues(pairs: string[] | undefined, flag: string): Record<string, string> | undefined {
  if (!pairs) return undefined;
  const result: Record<string, string> = {};
  for (const pair of pairs) {
    const at = pair.indexOf('=');
    if (at <= 0) throw new UsageError(`${flag} takes name=value pairs; got "${pair}"`);
    result[pair.slice(0, at)] = pair.slice(at + 1);
  }
  return result;
}

function oneOf<T extends string>(
  value: string | undefined,
  allowed: readonly T[],
  flag: string,
): T | undefined {
  if (value === undefined) return undefined;
  const match = allowed.find((a) => a.toLowerCase() === value.toLowerCase());
  if (!match) throw new UsageError(`${flag} must be one of ${allowed.join(', ')}; got "${value}"`);
  return match;
}

/** `--env-vars a=1 b=secretref:s` as the container's `env`. */
function envVars(pairs: string[] | undefined) {
  const vars = keyValues(pairs, '--env-vars');
  if (!vars) return undefined;
  return Object.entries(vars).map(([name, value]) =>
    value.startsWith('secretref:') ? { name, secretRef: value.slice('secretref:'.length) } : { name, value },
  );
}

function checkLifecycle(flags: PoolFlags, lifecycle: string | undefined): void {
  if (lifecycle === 'OnContainerExit' && flags.cooldownPeriod !== undefined) {
    throw new UsageError('--cooldown-period is for --lifecycle-type Timed; use --max-alive-period');
  }
  if (lifecycle === 'Timed' && flags.maxAlivePeriod !== undefined) {
    throw new UsageError('--max-alive-period is for --lifecycle-type OnContainerExit; use --cooldown-period');
  }
}

type Template = NonNullable<SessionPool['properties']['customContainerTemplate']>;

/** Whether any flag of the custom container's template is given. */
export function changesTemplate(flags: PoolFlags): boolean {
  return [
    flags.image,
    flags.containerName,
    flags.command,
    flags.args,
    flags.envVars,
    flags.targetPort,
    flags.registryServer,
    flags.registryUsername,
    flags.registryPassword,
  ].some((value) => value !== undefined);
}

/**
 * The custom-container template from the flags, over `current` (the pool's template, on update):
 * a merge patch replaces arrays whole, so the container is rebuilt from what it was.
 */
function customContainerTemplate(flags: PoolFlags, name: string, current?: Template) {
  const secrets = flags.registryPassword
    ? [{ name: 'registry-password', value: flags.registryPassword }]
    : [];
  const was = current?.containers[0];
  const container = {
    ...was,
    name: flags.containerName ?? was?.name ?? name,
    image: flags.image ?? was?.image ?? '',
    ...(flags.command && { command: flags.command }),
    ...(flags.args && { args: flags.args }),
    ...(flags.envVars && { env: envVars(flags.envVars) ?? [] }),
    ...((flags.cpu !== undefined || flags.memory !== undefined) && {
      resources: {
        cpu: flags.cpu ?? was?.resources?.cpu ?? 0.25,
        memory: flags.memory ?? was?.resources?.memory ?? '0.5Gi',
      },
    }),
  };
  const registry =
    flags.registryServer || flags.registryUsername || flags.registryPassword
      ? {
          server: flags.registryServer ?? current?.registryCredentials?.server ?? '',
          ...((flags.registryUsername ?? current?.registryCredentials?.username) !== undefined && {
            username: flags.registryUsername ?? current?.registryCredentials?.username,
          }),
          ...((flags.registryPassword !== undefined || current?.registryCredentials?.passwordSecretRef) && {
            passwordSecretRef:
              flags.registryPassword !== undefined
                ? 'registry-password'
                : current?.registryCredentials?.passwordSecretRef,
          }),
        }
      : current?.registryCredentials;
  const targetPort = flags.targetPort ?? current?.ingress?.targetPort;
  const template: Template = {
    containers: [container],
    ...(targetPort !== undefined && { ingress: { targetPort } }),
    ...(registry && { registryCredentials: registry as NonNullable<Template['registryCredentials']> }),
  };
  return { template, secrets };
}

/** The ARM body for `sessionpool create`. */
export function createBody(name: string, flags: PoolFlags): SessionPool {
  const containerType = oneOf(flags.containerType, CONTAINER_TYPES, '--container-type') ?? 'PythonLTS';
  const lifecycle = oneOf(flags.lifecycleType, ['Timed', 'OnContainerExit'] as const, '--lifecycle-type');
  checkLifecycle(flags, lifecycle ?? 'Timed');
  const custom = containerType === 'CustomContainer';
  if (!custom && (flags.image || flags.targetPort !== undefined || flags.registryServer || flags.envVars)) {
    throw new UsageError(
      '--image, --target-port, --env-vars and --registry-* are for --container-type CustomContainer',
    );
  }
  if (custom && (flags.targetPort === undefined || !flags.image)) {
    throw new UsageError('--image and --target-port are required for --container-type CustomContainer');
  }
  const secrets = keyValues(flags.secrets, '--secrets');
  const tags = keyValues(flags.tags, '--tags');
  const networkStatus = oneOf(
    flags.networkStatus,
    ['EgressEnabled', 'EgressDisabled'] as const,
    '--network-status',
  );
  const body = poolDefinition({
    containerType: containerType as 'PythonLTS',
    ...(flags.location && { location: flags.location }),
    ...(flags.maxSessions !== undefined && { maxSessions: flags.maxSessions }),
    ...(flags.readySessions !== undefined && { readySessions: flags.readySessions }),
    ...(lifecycle && { lifecycle }),
    ...(flags.cooldownPeriod !== undefined && { cooldownSeconds: flags.cooldownPeriod }),
    ...(flags.maxAlivePeriod !== undefined && { maxAliveSeconds: flags.maxAlivePeriod }),
    ...(networkStatus && { networkStatus }),
    ...(!custom && flags.cpu !== undefined && { cpu: flags.cpu }),
    ...(!custom && flags.memory !== undefined && { memory: flags.memory }),
    ...(secrets && { secrets }),
    ...(tags && { tags }),
    ...(flags.preloadModules && { preloadModules: flags.preloadModules }),
  });
  if (!custom) return body;
  const { template, secrets: registrySecrets } = customContainerTemplate(flags, name);
  return {
    ...body,
    properties: {
      ...body.properties,
      customContainerTemplate: template,
      secrets: [...(body.properties.secrets ?? []), ...registrySecrets],
    },
  };
}

/**
 * The JSON merge patch for `sessionpool update`: only what the flags name. `current` is the pool as
 * it is, needed when a custom container's template changes.
 */
export function updatePatch(flags: PoolFlags, current?: SessionPool): Record<string, unknown> {
  if (flags.containerType !== undefined) {
    throw new UsageError("a pool's container type cannot change; create a new pool instead");
  }
  const lifecycle = oneOf(flags.lifecycleType, ['Timed', 'OnContainerExit'] as const, '--lifecycle-type');
  checkLifecycle(flags, lifecycle);
  const properties: Record<string, unknown> = {};
  const scale = {
    ...(flags.maxSessions !== undefined && { maxConcurrentSessions: flags.maxSessions }),
    ...(flags.readySessions !== undefined && { readySessionInstances: flags.readySessions }),
  };
  if (Object.keys(scale).length) properties.scaleConfiguration = scale;
  const lifecycleConfiguration = {
    ...(lifecycle && { lifecycleType: lifecycle }),
    ...(flags.cooldownPeriod !== undefined && { cooldownPeriodInSeconds: flags.cooldownPeriod }),
    ...(flags.maxAlivePeriod !== undefined && { maxAlivePeriodInSeconds: flags.maxAlivePeriod }),
  };
  if (Object.keys(lifecycleConfiguration).length) {
    properties.dynamicPoolConfiguration = { lifecycleConfiguration };
  }
  if (flags.preloadModules) properties.preloadModules = flags.preloadModules;
  if (flags.networkStatus) {
    properties.sessionNetworkConfiguration = {
      status: oneOf(flags.networkStatus, ['EgressEnabled', 'EgressDisabled'] as const, '--network-status'),
    };
  }
  const template = current?.properties.customContainerTemplate;
  if (changesTemplate(flags) || (template && (flags.cpu !== undefined || flags.memory !== undefined))) {
    if (!template) {
      throw new UsageError(
        '--image, --target-port, --env-vars and --registry-* are for CustomContainer pools',
      );
    }
    const built = customContainerTemplate(flags, current.name ?? '', template);
    properties.customContainerTemplate = built.template;
    if (built.secrets.length) {
      properties.secrets = [...(current.properties.secrets ?? []), ...built.secrets];
    }
  } else if (flags.cpu !== undefined || flags.memory !== undefined) {
    properties.sessionResources = {
      ...(flags.cpu !== undefined && { cpu: flags.cpu }),
      ...(flags.memory !== undefined && { memory: flags.memory }),
    };
  }
  const secrets = keyValues(flags.secrets, '--secrets');
  if (secrets) {
    const given = Object.entries(secrets).map(([name, value]) => ({ name, value }));
    const others = ((properties.secrets ?? []) as { name: string }[]).filter((s) => !(s.name in secrets));
    properties.secrets = [...others, ...given];
  }
  const tags = keyValues(flags.tags, '--tags');
  const patch = { ...(tags && { tags }), ...(Object.keys(properties).length && { properties }) };
  if (Object.keys(patch).length === 0) {
    throw new UsageError('nothing to update: give at least one setting, e.g. --max-sessions 20');
  }
  return patch;
}
