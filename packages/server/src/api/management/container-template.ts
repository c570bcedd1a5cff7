/**
 * @module api/management/container-template
 * A custom container pool's `customContainerTemplate` (registry credentials, the container, its
 * ingress and probes) read into a {@link ContainerTemplate} and written back. Azure allows several
 * containers per session; Sandpool runs one, the one the proxy reaches.
 */

import { AppError, ErrorCode } from '../../errors.js';
import type { ContainerTemplate, EnvVar, Probe } from '../../pool/pool-spec.js';
import { parseImageReference } from '../../pool/container-image.js';
import {
  field,
  firstField,
  optionalEnum,
  optionalInteger,
  optionalObject,
  optionalString,
  type JsonRecord,
} from '../wire.js';

const TEMPLATE = 'properties.customContainerTemplate';
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_.-]{0,255}$/;
const CONTAINER_NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}$/;

function invalid(target: string, message: string): AppError {
  return new AppError(ErrorCode.InvalidParameter, `${target} ${message}`, { target });
}

function optionalArray(value: unknown, target: string, maxItems: number): unknown[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw invalid(target, 'must be an array');
  if (value.length > maxItems) throw invalid(target, `must have at most ${maxItems} items`);
  return value;
}

function strings(value: unknown, target: string): string[] {
  return optionalArray(value, target, 256).map(
    (item, i) => optionalString(item, `${target}[${i}]`, 65_536) ?? '',
  );
}

function port(value: unknown, target: string): number {
  const parsed = optionalInteger(value, target, { min: 1, max: 65_535 });
  if (parsed === undefined) throw invalid(target, 'is required');
  return parsed;
}

function parseEnv(value: unknown, target: string, secrets: Set<string>): EnvVar[] {
  const seen = new Set<string>();
  return optionalArray(value, target, 256).map((entry, i) => {
    const at = `${target}[${i}]`;
    const item = optionalObject(entry, at);
    const name = optionalString(field(item, 'name'), `${at}.name`, 256) ?? '';
    if (!ENV_NAME.test(name)) throw invalid(`${at}.name`, 'must be a variable name (letters, digits, _ . -)');
    if (seen.has(name)) throw invalid(`${at}.name`, `lists ${name} twice`);
    seen.add(name);
    const secretRef = optionalString(field(item, 'secretRef'), `${at}.secretRef`, 253);
    const literal = optionalString(field(item, 'value'), `${at}.value`, 65_536);
    if (secretRef !== undefined && literal !== undefined) {
      throw invalid(at, 'takes either value or secretRef, not both');
    }
    if (secretRef !== undefined) {
      if (!secrets.has(secretRef))
        throw invalid(`${at}.secretRef`, `names no secret of the pool: ${secretRef}`);
      return { name, secretRef };
    }
    return { name, value: literal ?? '' };
  });
}

function parseProbe(entry: unknown, at: string): Probe {
  const probe = optionalObject(entry, at);
  const type = optionalEnum(field(probe, 'type'), `${at}.type`, ['Liveness', 'Startup'] as const);
  if (!type) throw invalid(`${at}.type`, 'is required: Liveness or Startup');
  const http = optionalObject(field(probe, 'httpGet'), `${at}.httpGet`);
  const tcp = optionalObject(field(probe, 'tcpSocket'), `${at}.tcpSocket`);
  if (Boolean(http) === Boolean(tcp)) throw invalid(at, 'needs exactly one of httpGet and tcpSocket');
  let check: Probe['check'];
  if (http) {
    const scheme = optionalEnum(field(http, 'scheme'), `${at}.httpGet.scheme`, ['HTTP', 'HTTPS'] as const);
    if (scheme === 'HTTPS') {
      throw invalid(
        `${at}.httpGet.scheme`,
        'HTTPS is not supported: the probe reaches the container on its loopback',
      );
    }
    const path = optionalString(field(http, 'path'), `${at}.httpGet.path`, 2048) ?? '/';
    if (!path.startsWith('/')) throw invalid(`${at}.httpGet.path`, 'must start with /');
    const headers = optionalArray(field(http, 'httpHeaders'), `${at}.httpGet.httpHeaders`, 32).map((h, i) => {
      const hat = `${at}.httpGet.httpHeaders[${i}]`;
      const header = optionalObject(h, hat);
      const name = optionalString(field(header, 'name'), `${hat}.name`, 256) ?? '';
      if (!HEADER_NAME.test(name)) throw invalid(`${hat}.name`, 'must be an HTTP header name');
      return { name, value: optionalString(field(header, 'value'), `${hat}.value`, 4096) ?? '' };
    });
    check = { kind: 'httpGet', path, port: port(field(http, 'port'), `${at}.httpGet.port`), headers };
  } else {
    check = { kind: 'tcpSocket', port: port(field(tcp, 'port'), `${at}.tcpSocket.port`) };
  }
  // Kubernetes requires 1 for liveness and startup probes; anything else is refused, not ignored.
  optionalInteger(field(probe, 'successThreshold'), `${at}.successThreshold`, { min: 1, max: 1 });
  return {
    type,
    check,
    initialDelaySeconds:
      optionalInteger(field(probe, 'initialDelaySeconds'), `${at}.initialDelaySeconds`, {
        min: 0,
        max: 60,
      }) ?? 0,
    periodSeconds:
      optionalInteger(field(probe, 'periodSeconds'), `${at}.periodSeconds`, { min: 1, max: 240 }) ?? 10,
    timeoutSeconds:
      optionalInteger(field(probe, 'timeoutSeconds'), `${at}.timeoutSeconds`, { min: 1, max: 240 }) ?? 1,
    failureThreshold:
      optionalInteger(field(probe, 'failureThreshold'), `${at}.failureThreshold`, { min: 1, max: 10 }) ?? 3,
  };
}

export interface ParsedTemplate {
  container: ContainerTemplate;
  /** The container's own `resources`, which win over `sessionResources`. */
  resources: { cpu: unknown; memory: unknown } | undefined;
}

/**
 * Reads `customContainerTemplate`; `secrets` are the names of the pool's secrets, which env
 * `secretRef`s and the registry's `passwordSecretRef` must name. The image's digest is unknown
 * until the pull.
 */
export function parseContainerTemplate(
  value: unknown,
  poolName: string,
  secrets: Set<string>,
): ParsedTemplate {
  const template = optionalObject(value, TEMPLATE);
  if (!template) throw invalid(TEMPLATE, 'is required for a CustomContainer pool');
  const containers = optionalArray(field(template, 'containers'), `${TEMPLATE}.containers`, 1);
  if (containers.length !== 1) {
    throw invalid(
      `${TEMPLATE}.containers`,
      'must list one container (Sandpool runs one container per session)',
    );
  }
  const at = `${TEMPLATE}.containers[0]`;
  const entry = optionalObject(containers[0], at);
  const image = optionalString(field(entry, 'image'), `${at}.image`, 512);
  if (!image) throw invalid(`${at}.image`, 'is required');
  const reference = parseImageReference(image);
  const name = optionalString(field(entry, 'name'), `${at}.name`, 63) ?? poolName.toLowerCase();
  if (!CONTAINER_NAME.test(name))
    throw invalid(`${at}.name`, 'must be lower-case letters, digits and dashes');

  const probes = optionalArray(field(entry, 'probes'), `${at}.probes`, 2).map((p, i) =>
    parseProbe(p, `${at}.probes[${i}]`),
  );
  if (new Set(probes.map((p) => p.type)).size !== probes.length) {
    throw invalid(`${at}.probes`, 'may hold one probe of each type');
  }

  const ingress = optionalObject(field(template, 'ingress'), `${TEMPLATE}.ingress`);
  const targetPort = port(field(ingress, 'targetPort'), `${TEMPLATE}.ingress.targetPort`);

  const credentials = optionalObject(
    field(template, 'registryCredentials'),
    `${TEMPLATE}.registryCredentials`,
  );
  let registry: ContainerTemplate['registry'] = null;
  if (credentials) {
    const cat = `${TEMPLATE}.registryCredentials`;
    if (field(credentials, 'identity') !== undefined) {
      throw invalid(
        `${cat}.identity`,
        'is not supported: managed identities are Azure’s; use username and passwordSecretRef',
      );
    }
    const server = optionalString(
      firstField(credentials, ['server', 'registryServer']),
      `${cat}.server`,
      255,
    );
    const username = optionalString(field(credentials, 'username'), `${cat}.username`, 255);
    const passwordSecretRef = optionalString(
      field(credentials, 'passwordSecretRef'),
      `${cat}.passwordSecretRef`,
      253,
    );
    if (!server || !username || !passwordSecretRef) {
      throw invalid(cat, 'needs server, username and passwordSecretRef');
    }
    if (server.toLowerCase() !== reference.registry.toLowerCase()) {
      throw invalid(`${cat}.server`, `is ${server}, but the image comes from ${reference.registry}`);
    }
    if (!secrets.has(passwordSecretRef)) {
      throw invalid(`${cat}.passwordSecretRef`, `names no secret of the pool: ${passwordSecretRef}`);
    }
    registry = { server, username, passwordSecretRef };
  }

  const resources = optionalObject(field(entry, 'resources'), `${at}.resources`);
  return {
    container: {
      name,
      image,
      imageDigest: null,
      command: strings(field(entry, 'command'), `${at}.command`),
      args: strings(field(entry, 'args'), `${at}.args`),
      env: parseEnv(field(entry, 'env'), `${at}.env`, secrets),
      targetPort,
      probes,
      registry,
    },
    resources: resources && { cpu: field(resources, 'cpu'), memory: field(resources, 'memory') },
  };
}

function probeResource(probe: Probe): JsonRecord {
  const check =
    probe.check.kind === 'httpGet'
      ? {
          httpGet: {
            path: probe.check.path,
            port: probe.check.port,
            scheme: 'HTTP',
            ...(probe.check.headers.length > 0 && { httpHeaders: probe.check.headers }),
          },
        }
      : { tcpSocket: { port: probe.check.port } };
  return {
    type: probe.type,
    ...check,
    initialDelaySeconds: probe.initialDelaySeconds,
    periodSeconds: probe.periodSeconds,
    timeoutSeconds: probe.timeoutSeconds,
    failureThreshold: probe.failureThreshold,
    successThreshold: 1,
  };
}

/** The template as GET returns it; secret values stay out (env entries name their secretRef). */
export function containerTemplateResource(
  container: ContainerTemplate,
  resources: { cpu: number; memory: string },
): JsonRecord {
  return {
    ...(container.registry && { registryCredentials: container.registry }),
    containers: [
      {
        name: container.name,
        image: container.image,
        ...(container.command.length > 0 && { command: container.command }),
        ...(container.args.length > 0 && { args: container.args }),
        env: container.env,
        resources,
        probes: container.probes.map(probeResource),
      },
    ],
    ingress: { targetPort: container.targetPort },
  };
}
