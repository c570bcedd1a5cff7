/**
 * @module api/management/pool-parse
 * Reads the `Microsoft.App/sessionPools` resource in its current ARM shape (api-version 2025-01-01
 * and later; older shapes are moved to it first by `pool-legacy-shapes`) into a
 * {@link PoolDefinition}, with a typed error for every property that is out of bounds.
 */

import { isIPv4 } from 'node:net';

import { AppError, ErrorCode } from '../../errors.js';
import type { PoolDefinition } from '../../pool/pool-service.js';
import {
  isAllowEntry,
  pythonPoolSpec,
  type ContainerType,
  type Lifecycle,
  type PoolSpec,
} from '../../pool/pool-spec.js';
import {
  field,
  firstField,
  invalid,
  isRecord,
  optionalBoolean,
  optionalEnum,
  optionalInteger,
  optionalNumber,
  optionalObject,
  optionalString,
  type JsonRecord,
} from '../wire.js';
import { POOL_NAME } from '../../arm-id.js';
import { parseContainerTemplate } from './container-template.js';

const SECRET_NAME = /^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$/;
const GIB = 1024 ** 3;
/** What a PUT that leaves a property out gets. */
const DEFAULTS = pythonPoolSpec();

export interface PoolLimits {
  maxSessionsPerPool: number;
  /** Shortest cooldownPeriodInSeconds accepted (Azure's floor is 300). */
  minCooldownSeconds: number;
}

export function validatePoolName(name: string): void {
  if (!POOL_NAME.test(name)) {
    throw new AppError(
      ErrorCode.InvalidParameter,
      `The session pool name '${name}' is invalid: use 3 to 63 lower-case letters and digits, starting with a letter.`,
      { target: 'sessionPoolName' },
    );
  }
}

/** Memory as Kubernetes-style text (`0.5Gi`, `512Mi`, `1G`) → bytes. */
function parseMemory(value: unknown, target: string): number | undefined {
  const text = optionalString(value, target, 32);
  if (text === undefined) return undefined;
  const match = /^(\d+(?:\.\d+)?)\s*(Gi|Mi|G|M)?$/i.exec(text.trim());
  if (!match)
    throw new AppError(ErrorCode.InvalidParameter, `${target} must look like 0.5Gi or 512Mi`, { target });
  const unit = (match[2] ?? 'Gi').toLowerCase();
  const factor = { gi: GIB, g: 1e9, mi: 1024 ** 2, m: 1e6 }[unit]!;
  const bytes = Math.round(Number(match[1]) * factor);
  if (bytes < 0.5 * GIB || bytes > 4 * GIB) {
    throw new AppError(ErrorCode.InvalidParameter, `${target} must be from 0.5Gi to 4Gi, got ${text}`, {
      target,
    });
  }
  return bytes;
}

/** A custom container may live until it exits, up to a day. */
const MAX_ALIVE_SECONDS = { min: 10, max: 86_400, default: 3600 };

function parseLifecycle(
  dynamic: JsonRecord | undefined,
  containerType: ContainerType,
  limits: PoolLimits,
): Lifecycle {
  const target = 'properties.dynamicPoolConfiguration.lifecycleConfiguration';
  const lifecycle = optionalObject(field(dynamic, 'lifecycleConfiguration'), target);
  const type =
    optionalEnum(firstField(lifecycle, ['lifecycleType', 'type']), `${target}.lifecycleType`, [
      'Timed',
      'OnContainerExit',
    ] as const) ?? 'Timed';
  if (type === 'OnContainerExit' && containerType === 'CustomContainer') {
    if (field(lifecycle, 'cooldownPeriodInSeconds') !== undefined) {
      throw new AppError(ErrorCode.InvalidParameter, 'cooldownPeriodInSeconds applies to Timed pools only', {
        target: `${target}.cooldownPeriodInSeconds`,
      });
    }
    const maxAliveSeconds =
      optionalInteger(
        field(lifecycle, 'maxAlivePeriodInSeconds'),
        `${target}.maxAlivePeriodInSeconds`,
        MAX_ALIVE_SECONDS,
      ) ?? MAX_ALIVE_SECONDS.default;
    return { type: 'OnContainerExit', maxAliveSeconds };
  }
  if (type === 'OnContainerExit') {
    throw new AppError(
      ErrorCode.InvalidParameter,
      'lifecycleType OnContainerExit applies to CustomContainer pools only; code interpreter pools are Timed',
      { target: `${target}.lifecycleType` },
    );
  }
  const cooldown = optionalInteger(
    field(lifecycle, 'cooldownPeriodInSeconds'),
    `${target}.cooldownPeriodInSeconds`,
    { min: limits.minCooldownSeconds, max: 3600 },
  );
  return cooldown === undefined ? DEFAULTS.lifecycle : { type: 'Timed', cooldownSeconds: cooldown };
}

/** Sandpool's `sessionNetworkConfiguration.egressAllowlist`: IPv4 addresses, CIDRs and domain names. */
function parseAllowlist(value: unknown): string[] {
  const target = 'properties.sessionNetworkConfiguration.egressAllowlist';
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value) || value.length > 64) {
    throw new AppError(ErrorCode.InvalidParameter, `${target} must be an array of at most 64 entries`, {
      target,
    });
  }
  return value.map((entry, i) => {
    const text = optionalString(entry, `${target}[${i}]`, 253)?.toLowerCase() ?? '';
    if (!isAllowEntry(text)) {
      throw new AppError(
        ErrorCode.InvalidParameter,
        `${target}[${i}] must be an IPv4 address, a CIDR such as 203.0.113.0/24 or a domain name, optionally with :port or :port/tcp|udp; got ${JSON.stringify(entry)}`,
        { target: `${target}[${i}]` },
      );
    }
    return text;
  });
}

function parseSecrets(value: unknown): { name: string; value: string }[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) {
    throw new AppError(ErrorCode.InvalidParameter, 'properties.secrets must be an array', {
      target: 'properties.secrets',
    });
  }
  const seen = new Set<string>();
  return value.map((entry, i) => {
    const target = `properties.secrets[${i}]`;
    const secret = optionalObject(entry, target);
    const name = optionalString(field(secret, 'name'), `${target}.name`, 253) ?? '';
    if (!SECRET_NAME.test(name)) {
      throw new AppError(
        ErrorCode.InvalidParameter,
        `${target}.name must be lower-case letters, digits, '-' and '.'`,
        {
          target: `${target}.name`,
        },
      );
    }
    if (seen.has(name)) {
      throw new AppError(ErrorCode.InvalidParameter, `secret ${name} is listed twice`, {
        target: `${target}.name`,
      });
    }
    seen.add(name);
    return { name, value: optionalString(field(secret, 'value'), `${target}.value`, 65_536) ?? '' };
  });
}

/**
 * Reads a PUT body (or a PATCH merged onto the current resource), in the current shape (see
 * {@link toCurrentShape}). `previous`, the pool as it is, supplies write-only values the client
 * does not send back (secret values) and the container type a body may leave out; that type cannot
 * change.
 */
export function parsePoolResource(
  body: unknown,
  at: { subscription: string; resourceGroup: string; name: string },
  limits: PoolLimits,
  previous?: PoolSpec,
): PoolDefinition {
  validatePoolName(at.name);
  if (!isRecord(body)) {
    throw new AppError(
      ErrorCode.InvalidRequestContent,
      'The request body must be a JSON object describing the session pool.',
    );
  }
  const location = optionalString(field(body, 'location'), 'location', 90);
  if (!location) {
    throw new AppError(ErrorCode.InvalidParameter, 'location is required', { target: 'location' });
  }
  const tagsValue = optionalObject(field(body, 'tags'), 'tags') ?? {};
  const tags: Record<string, string> = {};
  for (const [key, value] of Object.entries(tagsValue)) {
    tags[key] = optionalString(value, `tags.${key}`, 256) ?? '';
  }

  const properties = optionalObject(field(body, 'properties'), 'properties') ?? {};
  const containerType =
    optionalEnum(field(properties, 'containerType'), 'properties.containerType', [
      'PythonLTS',
      'NodeLTS',
      'Shell',
      'CustomContainer',
      'FunctionsPython',
    ] as const) ??
    previous?.containerType ??
    'PythonLTS';
  if (containerType === 'FunctionsPython') {
    throw new AppError(
      ErrorCode.InvalidParameter,
      `containerType ${containerType} is not available on this server; use PythonLTS, NodeLTS, Shell or CustomContainer`,
      { target: 'properties.containerType' },
    );
  }
  if (previous && previous.containerType !== containerType) {
    throw new AppError(
      ErrorCode.InvalidParameter,
      `a pool's containerType cannot change (${previous.containerType} to ${containerType}); create a new pool instead`,
      { target: 'properties.containerType' },
    );
  }
  const management = optionalEnum(field(properties, 'poolManagementType'), 'properties.poolManagementType', [
    'Dynamic',
    'Manual',
  ] as const);
  if (management === 'Manual') {
    throw new AppError(
      ErrorCode.InvalidParameter,
      'poolManagementType Manual is not supported; use Dynamic',
      {
        target: 'properties.poolManagementType',
      },
    );
  }

  const scale = optionalObject(field(properties, 'scaleConfiguration'), 'properties.scaleConfiguration');
  const maxConcurrentSessions =
    optionalInteger(
      field(scale, 'maxConcurrentSessions'),
      'properties.scaleConfiguration.maxConcurrentSessions',
      {
        min: 1,
        max: limits.maxSessionsPerPool,
      },
    ) ?? DEFAULTS.maxConcurrentSessions;
  const readySessionInstances =
    optionalInteger(
      field(scale, 'readySessionInstances'),
      'properties.scaleConfiguration.readySessionInstances',
      {
        min: 0,
        max: limits.maxSessionsPerPool,
      },
    ) ?? Math.min(5, maxConcurrentSessions);
  if (readySessionInstances > maxConcurrentSessions) {
    throw new AppError(
      ErrorCode.InvalidParameter,
      `readySessionInstances (${readySessionInstances}) must not exceed maxConcurrentSessions (${maxConcurrentSessions})`,
      { target: 'properties.scaleConfiguration.readySessionInstances' },
    );
  }

  const dynamic = optionalObject(
    field(properties, 'dynamicPoolConfiguration'),
    'properties.dynamicPoolConfiguration',
  );
  const network = optionalObject(
    field(properties, 'sessionNetworkConfiguration'),
    'properties.sessionNetworkConfiguration',
  );
  const egress =
    optionalEnum(field(network, 'status'), 'properties.sessionNetworkConfiguration.status', [
      'EgressEnabled',
      'EgressDisabled',
    ] as const) ?? 'EgressDisabled';
  const egressAllow = parseAllowlist(field(network, 'egressAllowlist'));
  if (egress === 'EgressDisabled' && egressAllow.length > 0) {
    throw new AppError(
      ErrorCode.InvalidParameter,
      'egressAllowlist applies to EgressEnabled pools: an EgressDisabled session has no network beyond loopback',
      { target: 'properties.sessionNetworkConfiguration.egressAllowlist' },
    );
  }
  const dnsTarget = 'properties.sessionNetworkConfiguration.dnsServer';
  const egressDnsServer = optionalString(field(network, 'dnsServer'), dnsTarget, 15);
  if (egressDnsServer !== undefined && (egress === 'EgressDisabled' || !isIPv4(egressDnsServer))) {
    throw new AppError(
      ErrorCode.InvalidParameter,
      egress === 'EgressDisabled'
        ? 'dnsServer applies to EgressEnabled pools: an EgressDisabled session resolves nothing'
        : `dnsServer must be an IPv4 address; got ${JSON.stringify(egressDnsServer)}`,
      { target: dnsTarget },
    );
  }

  const secrets = parseSecrets(field(properties, 'secrets')).map((secret) => ({
    name: secret.name,
    value: secret.value || (previous?.secrets.find((s) => s.name === secret.name)?.value ?? ''),
  }));
  const templateField = field(properties, 'customContainerTemplate');
  if (containerType !== 'CustomContainer' && templateField !== undefined && templateField !== null) {
    throw new AppError(
      ErrorCode.InvalidParameter,
      'customContainerTemplate applies to CustomContainer pools only',
      {
        target: 'properties.customContainerTemplate',
      },
    );
  }
  const template =
    containerType === 'CustomContainer'
      ? parseContainerTemplate(templateField, at.name, new Set(secrets.map((s) => s.name)))
      : undefined;
  const resourcesTarget = template?.resources
    ? 'properties.customContainerTemplate.containers[0].resources'
    : 'properties.sessionResources';
  const resources =
    template?.resources ??
    optionalObject(field(properties, 'sessionResources'), 'properties.sessionResources');
  const runtime =
    optionalEnum(field(properties, 'sandboxRuntime'), 'properties.sandboxRuntime', [
      'runc',
      'runsc',
    ] as const) ?? DEFAULTS.runtime;
  if (template && runtime === 'runsc') {
    throw new AppError(
      ErrorCode.InvalidParameter,
      'CustomContainer pools run on runc: gVisor keeps the container’s network inside its own stack, where the session proxy cannot reach',
      { target: 'properties.sandboxRuntime' },
    );
  }

  const spec: PoolSpec = {
    containerType,
    maxConcurrentSessions,
    readySessionInstances,
    lifecycle: parseLifecycle(dynamic, containerType, limits),
    egress,
    egressAllow,
    ...(egressDnsServer !== undefined && { egressDnsServer }),
    cpu:
      optionalNumber(field(resources, 'cpu'), `${resourcesTarget}.cpu`, { min: 0.25, max: 2 }) ??
      DEFAULTS.cpu,
    memoryBytes: parseMemory(field(resources, 'memory'), `${resourcesTarget}.memory`) ?? DEFAULTS.memoryBytes,
    runtime,
    secrets,
    ...(template && { container: template.container }),
    mcpServer: parseMcpServerSettings(field(properties, 'mcpServerSettings'), containerType),
    preload: parsePreload(field(properties, 'preloadModules'), containerType),
  };
  return { ...at, location, tags, spec };
}

/** A Python module's dotted name, as `import` takes it. */
const MODULE_NAME = /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$/;
const MAX_PRELOAD = 32;

/**
 * `preloadModules` (Sandpool): modules a PythonLTS pool's interpreters import ahead of the session;
 * null when a PythonLTS pool names none, which gets the default (see preloadModules).
 */
function parsePreload(value: unknown, containerType: ContainerType): string[] | null {
  const target = 'properties.preloadModules';
  if (value === undefined || value === null) return containerType === 'PythonLTS' ? null : [];
  if (!Array.isArray(value) || value.length > MAX_PRELOAD) {
    throw invalid(target, `${target} must be an array of at most ${MAX_PRELOAD} module names`);
  }
  if (value.length > 0 && containerType !== 'PythonLTS') {
    throw invalid(target, 'preloadModules applies to PythonLTS pools');
  }
  const names = value.map((entry, i) => {
    const name = optionalString(entry, `${target}[${i}]`, 200) ?? '';
    if (!MODULE_NAME.test(name)) {
      throw invalid(
        `${target}[${i}]`,
        `${target}[${i}] must be a module name such as numpy or matplotlib.pyplot; got ${JSON.stringify(entry)}`,
      );
    }
    return name;
  });
  return [...new Set(names)];
}

/** `mcpServerSettings`: Azure's platform MCP server, for Python and Shell pools (names in any case). */
function parseMcpServerSettings(value: unknown, containerType: ContainerType): PoolSpec['mcpServer'] {
  const target = 'properties.mcpServerSettings';
  const settings = optionalObject(value, target);
  const enabled =
    optionalBoolean(field(settings, 'isMcpServerEnabled'), `${target}.isMcpServerEnabled`) ?? false;
  const apiKeyDisabled =
    optionalBoolean(field(settings, 'isMcpServerApiKeyDisabled'), `${target}.isMcpServerApiKeyDisabled`) ??
    false;
  if (enabled && containerType !== 'PythonLTS' && containerType !== 'Shell') {
    throw new AppError(
      ErrorCode.InvalidParameter,
      'the platform MCP server serves PythonLTS and Shell pools',
      {
        target: `${target}.isMcpServerEnabled`,
      },
    );
  }
  return { enabled, apiKeyDisabled };
}
