/**
 * @module config
 * Sandpool's configuration: one TypeBox schema, read in one place. Each setting can come from a JSON
 * file (`--config` / SANDPOOL_CONFIG), the environment (SANDPOOL_ + the name in upper snake case) or a
 * flag (`--` + the name in kebab case); flags win over the environment, which wins over the file.
 * Every default works on a fresh host set up by scripts/setup.sh. Nothing else reads `process.env`.
 */

import { readFileSync } from 'node:fs';
import { availableParallelism, hostname, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import Type, { type Static } from 'typebox';
import Value from 'typebox/value';

import { TEMPLATE_POOL_NAME } from './arm-id.js';

const OidcIssuer = Type.Object({
  /** Must equal the token's `iss`. */
  issuer: Type.String({ minLength: 1 }),
  /** Where the issuer publishes its signing keys. */
  jwksUri: Type.String({ minLength: 1 }),
  /** The claim that lists the caller's role grants (see auth/roles). */
  rolesClaim: Type.String({ default: 'roles' }),
});

export const ConfigSchema = Type.Object({
  home: Type.String({ default: '/var/lib/sandpool', description: 'Images, sandbox state and the store.' }),
  runDir: Type.String({ default: '/run/sandpool', description: 'State that must not outlive a reboot.' }),
  runtime: Type.Union([Type.Literal('runc'), Type.Literal('crun'), Type.Literal('runsc')], {
    default: 'runc',
    description: 'The OCI runtime for new sandboxes.',
  }),
  seccompProfile: Type.String({
    default: '/usr/share/containers/seccomp.json',
    description: 'The containers-format profile the sandbox filter derives from.',
  }),
  conmonPath: Type.String({ default: '/usr/bin/conmon', description: 'The per-sandbox monitor.' }),
  socatPath: Type.String({
    default: '/usr/bin/socat',
    description: 'Bridges the session proxy to a custom container’s port inside its network namespace.',
  }),
  egressSubnet: Type.String({
    default: '10.64.0.0/14',
    pattern: '^\\d{1,3}(\\.\\d{1,3}){3}/(1[0-4]|[0-9])$',
    description:
      'Where EgressEnabled sandboxes get their links (a /30 each; a /14 or larger holds every host id range).',
  }),
  egressDnsServer: Type.String({
    default: '',
    description: 'The resolver EgressEnabled sandboxes’ DNS goes to (default: the host’s first nameserver).',
  }),
  insecureRegistries: Type.Array(Type.String(), {
    default: [],
    description: 'Registries (host:port) pulled from over plain HTTP or without verifying TLS (JSON).',
  }),
  internalRegistries: Type.Array(Type.String(), {
    default: [],
    description:
      'Registries (host:port) on loopback, private or link-local addresses that pools may pull from (JSON); any other registry there is refused.',
  }),
  imagePullTimeoutSeconds: Type.Integer({
    default: 900,
    minimum: 10,
    maximum: 86_400,
    description: 'Longest a custom container image may take to download or unpack.',
  }),
  idBase: Type.Integer({
    default: 1_000_000_000,
    minimum: 65_536,
    maximum: 4_294_901_760,
    description: 'First host uid/gid handed to sandboxes (65536 per sandbox).',
  }),
  maxSandboxes: Type.Integer({
    default: 2000,
    minimum: 1,
    maximum: 16_000,
    description: 'Live sandboxes on this host.',
  }),
  nodeCpu: Type.Number({
    default: 0,
    minimum: 0,
    maximum: 100_000,
    description:
      'Cores the sandboxes on this host may reserve together, each its pool’s session cpu, ready ones included (0: 16 per host core, since a session’s cpu is a ceiling an idle interpreter stays far below).',
  }),
  nodeMemoryGib: Type.Number({
    default: 0,
    minimum: 0,
    maximum: 1_000_000,
    description:
      'Memory (GiB) the sandboxes on this host may reserve together, each its pool’s session memory, ready ones included: a session is admitted only when its size fits (0: the sandboxes’ memory limit, host memory minus memoryReserveGib, times memoryOvercommit).',
  }),
  memoryReserveGib: Type.Number({
    default: 1,
    minimum: 0,
    maximum: 1_000_000,
    description:
      'Host memory (GiB) kept from the sandboxes for the server, its helpers and the kernel: the sandboxes’ parent cgroup is capped at the host’s memory minus this, so memory pressure stays among sandboxes.',
  }),
  memoryOvercommit: Type.Number({
    default: 4,
    minimum: 0.1,
    maximum: 1000,
    description:
      'How many times the sandboxes’ memory limit their sessions’ sizes may add up to (a session’s memory is a ceiling an idle interpreter stays far below); at 1 or less the host can never run short.',
  }),
  memoryPressurePercent: Type.Integer({
    default: 90,
    minimum: 50,
    maximum: 99,
    description:
      'With sizes overcommitted, the share of the sandboxes’ memory limit their working set may reach: above it the node admits no session and ends sandboxes by policy (ready ones, then the longest idle sessions) with reason hostMemoryPressure.',
  }),
  zygote: Type.Boolean({
    default: true,
    description:
      'Start PythonLTS and Shell sandboxes on runc without egress by forking a prepared interpreter (a zygote per image and preload list) instead of starting Python in each: the imported modules’ memory is shared, and a cold start skips the interpreter’s start. The isolation is the same (docs/density.md). false starts every sandbox under runc.',
  }),
  memoryCheckIntervalMs: Type.Integer({
    default: 500,
    minimum: 50,
    maximum: 60_000,
    description: 'How often the sandboxes’ memory is compared with their limit.',
  }),
  cgroupParent: Type.String({
    default: 'sandpool',
    pattern: '^[a-z0-9][a-z0-9_-]*$',
    description: 'The cgroup directory holding every sandbox cgroup.',
  }),
  nodeRootfs: Type.String({
    default: '',
    description:
      'The code-interpreter image for NodeLTS pools (default: <home>/images/node-lts/rootfs, built by setup).',
  }),
  pythonRootfs: Type.String({
    default: '',
    description:
      'The code-interpreter image for PythonLTS and Shell pools (default: <home>/images/python-lts/rootfs, built by setup).',
  }),
  host: Type.String({ default: '127.0.0.1', description: 'Address the API listens on.' }),
  port: Type.Integer({ default: 8443, minimum: 0, maximum: 65_535, description: '0 picks a free port.' }),
  tls: Type.Union([Type.Literal('auto'), Type.Literal('off')], {
    default: 'auto',
    description: 'auto: HTTPS with tlsCert/tlsKey, or a generated self-signed pair; off: plain HTTP.',
  }),
  tlsCert: Type.String({ default: '', description: 'PEM certificate file.' }),
  tlsKey: Type.String({ default: '', description: 'PEM private key file.' }),
  publicUrl: Type.String({
    default: '',
    description: 'Base URL clients use to reach this server (default: from host and port).',
  }),
  database: Type.String({ default: '', description: 'SQLite file (default: <home>/sandpool.db).' }),
  store: Type.String({
    default: '',
    pattern: '^(|postgres(ql)?://.+)$',
    description:
      'A PostgreSQL URL (postgres://user:password@host:port/database) to keep the store there instead of the SQLite file. Every node of a cluster names the same database.',
  }),
  storeKeys: Type.String({
    default: '',
    description:
      'Keyring that seals secret values and settings in the store (default: <database>.keys, or <home>/store.keys with PostgreSQL, where every node needs the same file).',
  }),
  logLevel: Type.Union(
    ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)),
    { default: 'info', description: 'pino log level of the JSON logs on stdout.' },
  ),
  maxSessionsPerPool: Type.Integer({
    default: 600,
    minimum: 1,
    maximum: 16_000,
    description: 'Upper bound of a pool’s maxConcurrentSessions.',
  }),
  agentStartTimeoutSeconds: Type.Integer({
    default: 30,
    minimum: 1,
    maximum: 600,
    description: 'Longest a code interpreter sandbox’s agent may take to start (a loaded host boots slower).',
  }),
  minCooldownSeconds: Type.Integer({
    default: 300,
    minimum: 1,
    maximum: 3600,
    description: 'Shortest cooldownPeriodInSeconds a pool may have (Azure’s floor is 300).',
  }),
  poolFullStatus: Type.Union([Type.Literal(429), Type.Literal(404)], {
    default: 429,
    description: 'HTTP status when a pool is full (Azure documents 404, users observe 429).',
  }),
  uploadMaxBytes: Type.Integer({
    default: 128 * 1024 * 1024,
    minimum: 1,
    description: 'Largest file upload in bytes (413 above).',
  }),
  refillParallelism: Type.Integer({
    default: 2,
    minimum: 1,
    maximum: 64,
    description: 'Sandboxes a pool starts at once while refilling its warm set.',
  }),
  rateLimitPerPrincipal: Type.Number({
    default: 200,
    minimum: 0,
    description: 'Requests per second one caller (API key or token subject) may make, averaged; 0: no limit.',
  }),
  rateLimitPerIdentifier: Type.Number({
    default: 50,
    minimum: 0,
    description: 'Requests per second to one session identifier of a pool, averaged; 0: no limit.',
  }),
  rateLimitBurstSeconds: Type.Number({
    default: 2,
    minimum: 0.1,
    maximum: 60,
    description: 'A caller or identifier may burst to this many seconds’ worth of its rate at once.',
  }),
  reaperIntervalMs: Type.Integer({ default: 1000, minimum: 10, description: 'How often expiry is checked.' }),
  nodeName: Type.String({
    default: '',
    pattern: '^(|[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?)$',
    description: 'This server’s name among the nodes sharing its store (default: the host name).',
  }),
  nodeUrl: Type.String({
    default: '',
    pattern: '^(|https?://.+)$',
    description:
      'The URL other nodes reach this one on, to forward requests for the sessions it holds (default: the URL it listens on).',
  }),
  nodeLeaseSeconds: Type.Integer({
    default: 15,
    minimum: 3,
    maximum: 300,
    description:
      'How long a node counts as live after it last renewed its lease (renewed every third of it).',
  }),
  auditRetentionDays: Type.Integer({
    default: 90,
    minimum: 1,
    maximum: 3650,
    description: 'How long the audit trail (GET /sandpool/audit) is kept.',
  }),
  usageRetentionDays: Type.Integer({
    default: 400,
    minimum: 1,
    maximum: 3650,
    description: 'How long the usage ledger (GET /sandpool/usage) is kept.',
  }),
  retentionHours: Type.Integer({
    default: 24,
    minimum: 1,
    maximum: 24 * 365,
    description:
      'How long finished executions (GET executions/{id}), ended sessions (the previous-session header) and pool events are kept.',
  }),
  defaultPool: Type.String({
    default: 'default',
    description: 'PythonLTS pool created on first start ("" for none).',
  }),
  defaultSubscription: Type.String({
    default: '00000000-0000-0000-0000-000000000000',
    description: 'Subscription id of the default pool.',
  }),
  defaultResourceGroup: Type.String({
    default: 'sandpool',
    description: 'Resource group of the default pool.',
  }),
  e2bResourceGroup: Type.String({
    default: 'e2b',
    description:
      'Resource group (in the default subscription) whose pools are E2B templates, each by its name.',
  }),
  e2bTemplates: Type.Array(Type.String({ pattern: TEMPLATE_POOL_NAME.source }), {
    default: ['base', 'code-interpreter-v1'],
    description:
      'PythonLTS pools created in the E2B resource group on first start, as templates E2B’s SDKs name (JSON; [] for none).',
  }),
  e2bDomain: Type.String({
    default: '',
    description:
      'Domain E2B’s SDKs build sandbox host names from (`{port}-{id}.<domain>`, wildcard DNS to this server); "" answers no domain.',
  }),
  e2bDefaultTimeoutSeconds: Type.Integer({
    default: 300,
    minimum: 1,
    maximum: 86_400,
    description: 'Lifetime of an E2B sandbox whose create names none (E2B’s own default is 300 s).',
  }),
  e2bMaxTimeoutSeconds: Type.Integer({
    default: 86_400,
    minimum: 1,
    maximum: 30 * 86_400,
    description: 'Longest lifetime an E2B sandbox may be given, at create or by setTimeout.',
  }),
  bootstrapApiKey: Type.String({
    default: '',
    description: 'Admin API key to register on first start instead of generating one.',
  }),
  audiences: Type.Array(Type.String(), {
    default: ['https://dynamicsessions.io', 'https://acasessions.io'],
    description: 'Token audiences accepted (with or without a trailing slash).',
  }),
  oidcIssuers: Type.Array(OidcIssuer, { default: [], description: 'External JWT issuers (JSON).' }),
});

export type Settings = Static<typeof ConfigSchema>;
export type OidcIssuerConfig = Static<typeof OidcIssuer>;

export interface Config extends Settings {
  /** Derived: the sandboxes' parent cgroup's memory limit, the host's memory minus the reserve. */
  sandboxMemoryBytes: number;
  /** Derived: where each piece lives. */
  paths: {
    stateDir: string;
    runtimeStateDir: string;
    pythonRootfs: string;
    pythonAgentDir: string;
    nodeRootfs: string;
    nodeAgentDir: string;
    /** The fork server interpreter sandboxes may start from (interpreter/zygote). */
    zygoteDir: string;
    /** Custom container images, one unpacked rootfs per manifest digest. */
    imageCacheDir: string;
    /** Console output of ended custom container sessions. */
    sessionLogsDir: string;
    /** The built web dashboard (packages/web/dist). */
    dashboardDir: string;
    database: string;
    storeKeys: string;
    tlsDir: string;
  };
}

export type LookupEnv = (name: string) => string | undefined;

export interface ConfigSources {
  /** Command-line arguments after the command name, e.g. `['--port', '9000']`. */
  argv?: readonly string[];
  lookupEnv?: LookupEnv;
  readFile?: (path: string) => string;
  /** The host's cores and memory, which the node's capacity defaults from. */
  host?: { cores: number; memoryBytes: number };
}

/** How far cpu reservations may exceed the host by default: see the nodeCpu setting. */
const DEFAULT_CPU_PER_CORE = 16;
const GIB = 1024 ** 3;

export class ConfigError extends Error {}

/**
 * The checkout (or the image's app directory) the server runs from: two levels above its package,
 * whether it runs compiled (dist/src) or from source (src, in development).
 */
const REPO_ROOT = join(
  dirname(fileURLToPath(import.meta.resolve('@sandpool/server/package.json'))),
  '..',
  '..',
);
type Key = keyof Settings;
const KEYS = Object.keys(ConfigSchema.properties) as Key[];

const envName = (key: string) => `SANDPOOL_${key.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`;
const flagName = (key: string) => `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;

/** Text from the environment or a flag, typed by the setting's schema (JSON for lists). */
function fromText(key: Key, text: string, source: string): unknown {
  const schema = ConfigSchema.properties[key] as { type?: string; anyOf?: { const?: unknown }[] };
  const numeric =
    schema.type === 'integer' ||
    schema.type === 'number' ||
    (schema.anyOf?.every((member) => typeof member.const === 'number') ?? false);
  if (schema.type === 'array') {
    try {
      return JSON.parse(text) as unknown;
    } catch {
      throw new ConfigError(`${source} must be a JSON array, got ${JSON.stringify(text)}`);
    }
  }
  if (numeric) {
    return text.trim() === '' ? Number.NaN : Number(text);
  }
  if (schema.type === 'boolean') {
    const flag = { true: true, false: false, '1': true, '0': false }[text.trim().toLowerCase()];
    if (flag === undefined)
      throw new ConfigError(`${source} must be true or false, got ${JSON.stringify(text)}`);
    return flag;
  }
  return text;
}

function parseFlags(argv: readonly string[]): { flags: Map<string, string>; configFile?: string } {
  const flags = new Map<string, string>();
  let configFile: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const eq = arg.indexOf('=');
    const name = eq === -1 ? arg : arg.slice(0, eq);
    const value = eq === -1 ? argv[++i] : arg.slice(eq + 1);
    if (!name.startsWith('--') || value === undefined) {
      throw new ConfigError(`expected --name value, got ${JSON.stringify(arg)}`);
    }
    if (name === '--config') configFile = value;
    else flags.set(name, value);
  }
  return configFile === undefined ? { flags } : { flags, configFile };
}

export function loadConfig(sources: ConfigSources = {}): Config {
  const lookupEnv = sources.lookupEnv ?? ((name: string) => process.env[name]);
  const readFile = sources.readFile ?? ((path: string) => readFileSync(path, 'utf8'));
  const host = sources.host ?? { cores: availableParallelism(), memoryBytes: totalmem() };
  const { flags, configFile } = parseFlags(sources.argv ?? []);
  const known = new Set(KEYS.map(flagName));
  for (const flag of flags.keys()) {
    if (!known.has(flag)) throw new ConfigError(`unknown option ${flag}`);
  }

  const merged: Record<string, unknown> = {};
  const origin = new Map<string, string>();
  const filePath = configFile ?? lookupEnv('SANDPOOL_CONFIG');
  if (filePath) {
    let file: unknown;
    try {
      file = JSON.parse(readFile(filePath));
    } catch (cause) {
      throw new ConfigError(`cannot read config file ${filePath}: ${(cause as Error).message}`);
    }
    if (typeof file !== 'object' || file === null || Array.isArray(file)) {
      throw new ConfigError(`config file ${filePath} must hold a JSON object`);
    }
    for (const [key, value] of Object.entries(file)) {
      if (!KEYS.includes(key as Key)) throw new ConfigError(`${filePath}: unknown setting ${key}`);
      merged[key] = value;
      origin.set(key, `${filePath}: ${key}`);
    }
  }
  for (const key of KEYS) {
    const fromEnv = lookupEnv(envName(key));
    if (fromEnv !== undefined && fromEnv !== '') {
      merged[key] = fromText(key, fromEnv, envName(key));
      origin.set(key, envName(key));
    }
    const fromFlag = flags.get(flagName(key));
    if (fromFlag !== undefined) {
      merged[key] = fromText(key, fromFlag, flagName(key));
      origin.set(key, flagName(key));
    }
  }

  const settings = Value.Default(ConfigSchema, merged) as Record<string, unknown>;
  const [first] = Value.Errors(ConfigSchema, settings);
  if (first) {
    const key = first.instancePath.split('/')[1] ?? '';
    const where = origin.get(key) ?? key;
    throw new ConfigError(
      `${where} ${first.message}, got ${JSON.stringify(settings[key])}${first.instancePath.split('/').length > 2 ? ` (at ${first.instancePath})` : ''}`,
    );
  }
  const valid = settings as Settings;
  const sandboxMemoryBytes = Math.floor(host.memoryBytes - valid.memoryReserveGib * GIB);
  if (sandboxMemoryBytes < 256 * 1024 ** 2) {
    throw new ConfigError(
      `${origin.get('memoryReserveGib') ?? 'memoryReserveGib'} leaves the sandboxes ${(sandboxMemoryBytes / GIB).toFixed(2)} GiB of the host's ${(host.memoryBytes / GIB).toFixed(2)} GiB; they need at least 0.25 GiB`,
    );
  }
  return {
    ...valid,
    egressDnsServer: valid.egressDnsServer || firstNameserver(readFile),
    nodeName: valid.nodeName || hostname().toLowerCase(),
    nodeCpu: valid.nodeCpu || host.cores * DEFAULT_CPU_PER_CORE,
    nodeMemoryGib: valid.nodeMemoryGib || (sandboxMemoryBytes / GIB) * valid.memoryOvercommit,
    sandboxMemoryBytes,
    paths: {
      stateDir: join(valid.home, 'sandboxes'),
      runtimeStateDir: join(valid.runDir, 'runtime'),
      pythonRootfs: valid.pythonRootfs || join(valid.home, 'images', 'python-lts', 'rootfs'),
      pythonAgentDir: join(REPO_ROOT, 'interpreter', 'python'),
      nodeRootfs: valid.nodeRootfs || join(valid.home, 'images', 'node-lts', 'rootfs'),
      nodeAgentDir: join(REPO_ROOT, 'interpreter', 'node'),
      zygoteDir: join(REPO_ROOT, 'interpreter', 'zygote'),
      imageCacheDir: join(valid.home, 'images', 'oci'),
      sessionLogsDir: join(valid.home, 'session-logs'),
      dashboardDir: join(REPO_ROOT, 'packages', 'web', 'dist'),
      database: valid.database || join(valid.home, 'sandpool.db'),
      storeKeys:
        valid.storeKeys ||
        (valid.store
          ? join(valid.home, 'store.keys')
          : `${valid.database || join(valid.home, 'sandpool.db')}.keys`),
      tlsDir: join(valid.home, 'tls'),
    },
  };
}

/** The host's first resolver (/etc/resolv.conf), the default for sandboxes with egress. */
function firstNameserver(readFile: (path: string) => string): string {
  try {
    return /^nameserver\s+(\d{1,3}(?:\.\d{1,3}){3})\s*$/m.exec(readFile('/etc/resolv.conf'))?.[1] ?? '';
  } catch {
    return '';
  }
}

/** The settings table of docs/settings.md, one row per setting. */
export function settingsTable(): string[] {
  return describeSettings().map(
    (s) => `| \`${s.flag}\` | \`${s.env}\` | ${s.description.replace(/\|/g, '\\|')} |`,
  );
}

/** Each setting with its sources and default, for `--help` and docs. */
export function describeSettings(): { key: string; env: string; flag: string; description: string }[] {
  return KEYS.map((key) => {
    const schema = ConfigSchema.properties[key] as { description?: string; default?: unknown };
    return {
      key,
      env: envName(key),
      flag: flagName(key),
      description: `${schema.description ?? ''} (default ${JSON.stringify(schema.default)})`.trim(),
    };
  });
}
