/**
 * Real Sandpool servers for end-to-end tests: each gets its own home (store, TLS), runtime root,
 * cgroup parent and host id range, listens on a free loopback port, and is torn down with every
 * sandbox it made. With a {@link FakeLauncher} the same server runs without sandboxes, for fast
 * tests of the API layers.
 */

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { after } from 'node:test';

import pino, { type Logger } from 'pino';

import { loadConfig, type Config } from '../src/config.js';
import { OciDriver } from '../src/sandbox/oci/oci-driver.js';
import { startServer, type RunningServer } from '../src/server.js';
import type { FakeImageSource, FakeLauncher } from './fake-launcher.js';
import { config as hostConfig, testIdBase } from './isolated-driver.js';

export const ADMIN_KEY = `sp_0123456789ab_${'A'.repeat(43)}`;
const SANDBOXES_PER_SERVER = 24;

export const SUBSCRIPTION = '11111111-2222-3333-4444-555555555555';
export const RESOURCE_GROUP = 'tests';

export interface TestServer {
  url: string;
  config: Config;
  server: RunningServer;
  /** Environment that starts the same server again (for child processes). */
  env: Record<string, string>;
  request(method: string, path: string, options?: RequestOptions): Promise<TestResponse>;
}

export interface RequestOptions {
  body?: unknown;
  key?: string | null;
  headers?: Record<string, string>;
  raw?: RequestInit['body'];
  /** Fails the request (AbortError) when no answer arrived in time. */
  timeoutMs?: number;
}

export interface TestResponse {
  status: number;
  headers: Headers;
  text: string;
  json: any;
}

let serversStarted = 0;

/** Environment for a server of its own under `home`. */
/** A metrics scrape without the `node` label every series carries (one value per server). */
export function withoutNodeLabel(text: string): string {
  return text
    .replaceAll(/,?node="[^"]*"/g, '')
    .replaceAll('{,', '{')
    .replaceAll('{}', '');
}

/** Polls `check` until it answers something other than undefined or false, and returns that. */
/**
 * Runs `assertion` until it passes; past the deadline its last failure is the test's. For what the
 * server finishes after it answers: a session's end is recorded before its sandbox is gone.
 */
export async function eventually(assertion: () => Promise<void>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await assertion();
      return;
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

export async function until<T>(
  what: string,
  check: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 20_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

export function testServerEnv(
  name: string,
  home: string,
  extra: Record<string, string> = {},
): Record<string, string> {
  return {
    SANDPOOL_HOME: home,
    SANDPOOL_RUN_DIR: `/run/sandpool-test-${name}-${process.pid}`,
    SANDPOOL_CGROUP_PARENT: 'sandpool-test',
    SANDPOOL_ID_BASE: String(testIdBase(SANDBOXES_PER_SERVER, serversStarted++)),
    SANDPOOL_MAX_SANDBOXES: String(SANDBOXES_PER_SERVER),
    SANDPOOL_PYTHON_ROOTFS: hostConfig.paths.pythonRootfs,
    SANDPOOL_NODE_ROOTFS: hostConfig.paths.nodeRootfs,
    SANDPOOL_HOST: '127.0.0.1',
    SANDPOOL_PORT: '0',
    SANDPOOL_TLS: 'off',
    SANDPOOL_LOG_LEVEL: 'silent',
    SANDPOOL_BOOTSTRAP_API_KEY: ADMIN_KEY,
    SANDPOOL_REAPER_INTERVAL_MS: '200',
    // No E2B templates unless the test asks for them, as with the default pool.
    SANDPOOL_E2B_TEMPLATES: '[]',
    ...extra,
  };
}

export function testConfig(env: Record<string, string>): Config {
  // No default pool unless the test asks for one: each test creates the pools it needs.
  return loadConfig({
    argv: ['--default-pool', env.SANDPOOL_DEFAULT_POOL ?? ''],
    lookupEnv: (name) => env[name],
  });
}

/** Destroys every sandbox a test server left and removes its directories. */
export async function removeServerState(config: Config): Promise<void> {
  const driver = OciDriver.fromConfig(config);
  for (const sandbox of await driver.list()) await driver.destroy(sandbox.id).catch(() => undefined);
  // Zygotes share the state directory through a bind mount of it onto itself.
  const stateDir = config.paths.stateDir;
  if (
    readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .some((l) => l.split(' ')[4] === stateDir)
  ) {
    spawnSync('umount', ['-l', stateDir]);
  }
  rmSync(config.runDir, { recursive: true, force: true });
  rmSync(config.home, { recursive: true, force: true });
}

export async function startTestServer(
  name: string,
  options: {
    launcher?: FakeLauncher;
    images?: FakeImageSource;
    env?: Record<string, string>;
    now?: () => number;
    logger?: Logger;
  } = {},
): Promise<TestServer> {
  const home = mkdtempSync(`/var/tmp/sandpool-test-${name}-`);
  const env = testServerEnv(name, home, options.env);
  const config = testConfig(env);
  // Every response of every test is checked against the OpenAPI schemas; the suite fails on any mismatch.
  const violations: string[] = [];
  const server = await startServer(config, {
    logger: options.logger ?? pino({ level: 'silent' }),
    onContractViolation: (violation) => violations.push(violation),
    ...(options.launcher && { launcher: options.launcher }),
    ...(options.images && { images: options.images }),
    ...(options.now && { now: options.now }),
  });
  after(async () => {
    await server.close();
    assert.deepEqual(violations, [], 'responses that break their documented schema');
    if (options.launcher) rmSync(home, { recursive: true, force: true });
    else await removeServerState(config);
  });
  const request = async (method: string, path: string, opts: RequestOptions = {}): Promise<TestResponse> => {
    const headers: Record<string, string> = { ...opts.headers };
    const key = opts.key === undefined ? ADMIN_KEY : opts.key;
    if (key !== null) headers.authorization = `Bearer ${key}`;
    let body: RequestInit['body'] | undefined = opts.raw;
    if (opts.body !== undefined) {
      body = JSON.stringify(opts.body);
      headers['content-type'] ??= 'application/json';
    }
    const response = await fetch(`${server.url}${path}`, {
      method,
      headers,
      ...(body !== undefined && { body }),
      ...(opts.timeoutMs !== undefined && { signal: AbortSignal.timeout(opts.timeoutMs) }),
    });
    const text = await response.text();
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    return { status: response.status, headers: response.headers, text, json };
  };
  return { url: server.url, config, server, env, request };
}

export const armPath = (name: string, resourceGroup = RESOURCE_GROUP) =>
  `/subscriptions/${SUBSCRIPTION}/resourceGroups/${resourceGroup}/providers/Microsoft.App/sessionPools/${name}`;

export const poolPath = (name: string, resourceGroup = RESOURCE_GROUP) =>
  `/subscriptions/${SUBSCRIPTION}/resourceGroups/${resourceGroup}/sessionPools/${name}`;

export const MGMT = 'api-version=2025-07-01';
export const DATA = 'api-version=2025-02-02-preview';

/** A code-interpreter pool's PUT body (PythonLTS unless `containerType` says Shell). */
export function interpreterPool(
  overrides: {
    max?: number;
    ready?: number;
    cooldown?: number;
    containerType?: 'PythonLTS' | 'NodeLTS' | 'Shell';
  } = {},
) {
  return {
    location: 'local',
    properties: {
      containerType: overrides.containerType ?? 'PythonLTS',
      poolManagementType: 'Dynamic',
      scaleConfiguration: {
        maxConcurrentSessions: overrides.max ?? 4,
        readySessionInstances: overrides.ready ?? 1,
      },
      dynamicPoolConfiguration: {
        lifecycleConfiguration: {
          lifecycleType: 'Timed',
          cooldownPeriodInSeconds: overrides.cooldown ?? 300,
        },
      },
      sessionNetworkConfiguration: { status: 'EgressDisabled' },
    },
  };
}

/** Creates a pool and waits for its create operation to finish; returns the final operation status. */
export async function createPool(
  server: TestServer,
  name: string,
  body: unknown = interpreterPool(),
  resourceGroup = RESOURCE_GROUP,
): Promise<string> {
  const created = await server.request('PUT', `${armPath(name, resourceGroup)}?${MGMT}`, { body });
  if (created.status !== 201 && created.status !== 200)
    throw new Error(`PUT ${name}: ${created.status} ${created.text}`);
  return pollAsyncOperation(server, created.headers.get('azure-asyncoperation')!);
}

export async function pollAsyncOperation(server: TestServer, url: string): Promise<string> {
  const path = url.slice(server.url.length);
  for (let i = 0; i < 600; i++) {
    const status = await server.request('GET', path);
    if (status.json?.status !== 'InProgress') return status.json?.status as string;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`operation ${url} did not finish`);
}

export function execute(
  server: TestServer,
  pool: string,
  identifier: string,
  code: string,
  extra: object = {},
) {
  return server.request(
    'POST',
    `${poolPath(pool)}/executions?${DATA}&identifier=${encodeURIComponent(identifier)}`,
    { body: { code, codeInputType: 'Inline', executionType: 'Synchronous', ...extra } },
  );
}

/** A new API key with `roles`, made by the admin key: its id and its secret. */
export async function newKey(server: TestServer, roles: string[]): Promise<{ id: string; key: string }> {
  const created = await server.request('POST', '/sandpool/apiKeys', { body: { name: 'tenant', roles } });
  assert.equal(created.status, 201, created.text);
  return created.json as { id: string; key: string };
}
