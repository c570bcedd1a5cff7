/**
 * The authorization matrix: every route the server has, as its declaration says (api/request-path),
 * tried with a credential of each kind: none, a revoked key, an expired token, a token derived from a
 * key that holds the route's role, the role itself at each scope that covers the pool (the pool, its
 * resource group, its subscription, every pool), another role, and the role on another pool and in
 * another resource group. A real server (real HTTP and SQLite; sandboxes faked). The expectations
 * come from the declarations alone, and SECURITY.md's matrix is this test's own table, so neither
 * the routes, the rules nor the document can drift from the others. An E2B sandbox's own routes take
 * that sandbox's tokens, not keys: they have their own columns and table.
 */

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

import type { DeclaredRoute } from '../../src/api/request-path.js';
import type { Action, Role } from '../../src/auth/roles.js';
import { FakeLauncher } from '../fake-launcher.js';
import {
  DATA,
  MGMT,
  RESOURCE_GROUP,
  SUBSCRIPTION,
  armPath,
  createPool,
  interpreterPool,
  newKey,
  startTestServer,
  type TestServer,
} from '../server-harness.js';

const POOL = 'matrix';
const OTHER_POOL = 'matrixtwo';
const OTHER_GROUP = 'other-team';
const SECURITY_MD = fileURLToPath(new URL('../../../../SECURITY.md', import.meta.url));
const MARKER = '<!-- authorization-matrix -->';
const SANDBOX_MARKER = '<!-- sandbox-credential-matrix -->';

/** Which roles allow an action (auth/roles' table, restated: the test checks the server against it). */
const ROLES_FOR: Record<Action, Role[]> = {
  'pools/read': ['Reader', 'Contributor'],
  'pools/write': ['Contributor'],
  'sessions/execute': ['SessionExecutor'],
  'sessions/stop': ['SessionExecutor', 'Contributor'],
  'sessions/read': ['Reader', 'SessionExecutor', 'Contributor'],
  'keys/write': ['Contributor'],
};
const ROLES: Role[] = ['Reader', 'SessionExecutor', 'Contributor'];

/** `scoped`: answered (not 401), within the caller's scopes: a list narrowed to them, or 403. */
type Outcome = 'allowed' | 'scoped' | '401' | '403' | '—';
/** A route and one of its methods (ANY for a route of every method), with the methods tried for it. */
type Route = DeclaredRoute & { method: string; tried: string[] };
const COLUMNS = [
  'no credential',
  'revoked key',
  'expired token',
  'derived token',
  'role at pool',
  'role at group',
  'role at subscription',
  'role everywhere',
  'another role',
  'role on another pool',
  'role in another group',
] as const;
type Column = (typeof COLUMNS)[number];
const SANDBOX_COLUMNS = [
  'no credential',
  'key with every role',
  'another sandbox’s token',
  'its traffic token',
  'its access token',
  'a killed sandbox’s token',
] as const;
type SandboxColumn = (typeof SANDBOX_COLUMNS)[number];

/** Whether a sandbox route (E2B's) takes the sandbox's traffic token too, as it declares. */
const takesTrafficToken = (route: Route) => route.access === 'sandboxTraffic';
const isSandboxRoute = (route: Route) => route.access === 'sandbox' || takesTrafficToken(route);

/** What a sandbox route gives each kind of caller; a killed sandbox answers E2B's 502. */
function sandboxExpected(route: Route): Record<SandboxColumn, Outcome | '502'> {
  return {
    'no credential': '401',
    'key with every role': '401',
    'another sandbox’s token': '401',
    'its traffic token': takesTrafficToken(route) ? 'allowed' : '401',
    'its access token': 'allowed',
    'a killed sandbox’s token': '502',
  };
}

function sandboxTable(routes: Route[]): string {
  const rows = routes.map((route) => {
    const outcomes = sandboxExpected(route);
    const who = takesTrafficToken(route)
      ? 'the sandbox’s access or traffic token'
      : 'the sandbox’s access token';
    return `| ${route.method} ${route.url} | ${who} | ${SANDBOX_COLUMNS.map((column) => outcomes[column]).join(' | ')} |`;
  });
  return [
    `| route | who may | ${SANDBOX_COLUMNS.join(' | ')} |`,
    `|---|---|${SANDBOX_COLUMNS.map(() => '---').join('|')}|`,
    ...rows,
  ].join('\n');
}

const groupScope = (group = RESOURCE_GROUP) => `/subscriptions/${SUBSCRIPTION}/resourceGroups/${group}`;

/** The actions a route's declaration asks for, and where. */
function demands(route: Route): { actions: Action[]; on: 'pool' | 'everything' } | undefined {
  if (route.access === 'poolKey') return { actions: ['sessions/execute'], on: 'pool' };
  if (typeof route.access !== 'object') return undefined;
  return { actions: [route.access.action].flat(), on: route.access.on };
}

/** One role set that allows every action, and one role that lacks one of them (if any does). */
function rolesOf(actions: Action[]): { right: Role[]; wrong: Role | undefined } {
  const right = [...new Set(actions.map((action) => ROLES_FOR[action][0]!))];
  const wrong = ROLES.find((role) => actions.some((action) => !ROLES_FOR[action].includes(role)));
  return { right, wrong };
}

/** What the declaration says each kind of caller gets. */
function expected(route: Route): Record<Column, Outcome> {
  const none: Outcome = route.access === 'public' ? 'allowed' : '401';
  const dead: Outcome = route.access === 'public' ? '—' : '401';
  const base = { 'no credential': none, 'revoked key': dead, 'expired token': dead };
  const demand = demands(route);
  if (!demand) {
    const unscoped = new Set<Column>(['derived token', 'role everywhere']);
    const any = (column: Column): Outcome =>
      route.access === 'public' ? '—' : unscoped.has(column) ? 'allowed' : 'scoped';
    return Object.fromEntries(
      COLUMNS.map((column) => [column, column in base ? base[column as keyof typeof base] : any(column)]),
    ) as Record<Column, Outcome>;
  }
  const pool = demand.on === 'pool';
  const { wrong } = rolesOf(demand.actions);
  return {
    ...base,
    'derived token': 'allowed',
    'role at pool': pool ? 'allowed' : '403',
    'role at group': pool ? 'allowed' : '403',
    'role at subscription': pool ? 'allowed' : '403',
    'role everywhere': 'allowed',
    'another role': wrong === undefined ? '—' : '403',
    'role on another pool': pool ? '403' : '—',
    'role in another group': pool ? '403' : '—',
  };
}

/** A concrete path for a route template: its pool, or the same pool name in another group. */
function pathOf(route: Route, pool = POOL, group = RESOURCE_GROUP): string {
  const filled = route.url
    .replace(':subscription', SUBSCRIPTION)
    .replace(':resourceGroup', group)
    .replace(/:pool\b|:name\b/, pool)
    .replace(/:[A-Za-z]+/g, 'x1')
    .replace('*', 'anything');
  const data = route.url.includes('/sessionPools/:pool');
  const query = route.url.startsWith('/subscriptions') ? (data ? `${DATA}&identifier=u1` : MGMT) : '';
  return query ? `${filled}?${query}` : filled;
}

/** A table of the routes, their callers and outcomes, as SECURITY.md carries it. */
function table(routes: Route[]): string {
  const name = (route: Route) =>
    `${route.method} ${route.url
      .replace(
        '/subscriptions/:subscription/resourceGroups/:resourceGroup/sessionPools/:pool',
        '{pool endpoint}',
      )
      .replace(
        /^\/subscriptions\/:subscription(\/resourceGroups\/:resourceGroup)?\/providers\/Microsoft.App/,
        '{ARM}',
      )}`;
  const who = (route: Route) => {
    const demand = demands(route);
    if (route.access === 'public') return 'anyone';
    if (route.access === 'caller') return 'any credential (narrowed by scope)';
    if (!demand) throw new Error(`no demand for ${route.url}`);
    const roles = rolesOf(demand.actions).right.join(' + ');
    const key = route.access === 'poolKey' ? 'the pool’s MCP key, or ' : '';
    return `${key}${roles} ${demand.on === 'pool' ? 'on the pool' : 'on every pool'}`;
  };
  const rows = routes.map((route) => {
    const outcomes = expected(route);
    return `| ${name(route)} | ${who(route)} | ${COLUMNS.map((column) => outcomes[column]).join(' | ')} |`;
  });
  return [
    `| route | who may | ${COLUMNS.join(' | ')} |`,
    `|---|---|${COLUMNS.map(() => '---').join('|')}|`,
    ...rows,
  ].join('\n');
}

describe('the authorization matrix: every route, every kind of credential', async () => {
  let clock = Date.now();
  const launcher = new FakeLauncher();
  const server: TestServer = await startTestServer('matrix', {
    launcher,
    now: () => clock,
    env: {
      SANDPOOL_RATE_LIMIT_PER_PRINCIPAL: '0',
      SANDPOOL_RATE_LIMIT_PER_IDENTIFIER: '0',
      SANDPOOL_E2B_TEMPLATES: '["base"]',
      SANDPOOL_DEFAULT_SUBSCRIPTION: SUBSCRIPTION,
    },
  });
  const withMcp = () => {
    const body = interpreterPool({ max: 50, ready: 0 });
    return { ...body, properties: { ...body.properties, mcpServerSettings: { isMcpServerEnabled: true } } };
  };
  await createPool(server, POOL, withMcp());
  await createPool(server, OTHER_POOL, withMcp());
  await createPool(server, POOL, withMcp(), OTHER_GROUP);
  // A route for any method (the session proxy's) is tried with GET and POST, and shown as ANY.
  const declared: Route[] = server.server.app
    .declaredRoutes()
    .flatMap((route) =>
      route.methods.length > 7
        ? [{ ...route, method: 'ANY', tried: ['GET', 'POST'] }]
        : route.methods.map((method) => ({ ...route, method, tried: [method] })),
    )
    .sort((a, b) => a.url.localeCompare(b.url) || a.method.localeCompare(b.method));
  const routes = declared.filter((route) => !isSandboxRoute(route));
  const sandboxRoutes = declared.filter(isSandboxRoute);

  const keys = new Map<string, Promise<string>>();
  const keyFor = (grants: string[]) => {
    const name = grants.join(',');
    let key = keys.get(name);
    if (!key) {
      key = newKey(server, grants).then((made) => made.key);
      keys.set(name, key);
    }
    return key;
  };
  const scoped = (roles: Role[], scope: string) =>
    keyFor(roles.map((role) => (scope === '*' ? role : `${role}:${scope}`)));

  const everything = await newKey(server, ['Contributor', 'SessionExecutor', 'Reader']);
  const revoked = await newKey(server, ['Contributor', 'SessionExecutor', 'Reader']);
  assert.equal((await server.request('DELETE', `/sandpool/apiKeys/${revoked.id}`)).status, 200);
  const expiring = (
    await server.request('POST', '/sandpool/tokens', { key: everything.key, body: { expiresInSeconds: 60 } })
  ).json.token as string;

  /** The credential of a column for a route, or undefined where the column does not apply. */
  async function credential(route: Route, column: Column): Promise<string | null | undefined> {
    const demand = demands(route);
    const roles = demand ? rolesOf(demand.actions).right : (['Reader'] as Role[]);
    const poolId = armPath(POOL);
    switch (column) {
      case 'no credential':
        return null;
      case 'revoked key':
        return revoked.key;
      case 'expired token':
        return expiring;
      case 'derived token': {
        const parent = await scoped(roles, '*');
        const minted = await server.request('POST', '/sandpool/tokens', { key: parent, body: {} });
        return minted.json.token as string;
      }
      case 'role at pool':
        return scoped(roles, poolId);
      case 'role at group':
        return scoped(roles, groupScope());
      case 'role at subscription':
        return scoped(roles, `/subscriptions/${SUBSCRIPTION}`);
      case 'role everywhere':
        return scoped(roles, '*');
      case 'another role': {
        const wrong = demand && rolesOf(demand.actions).wrong;
        return wrong && scoped([wrong], poolId);
      }
      case 'role on another pool':
        return scoped(roles, armPath(OTHER_POOL));
      case 'role in another group':
        return scoped(roles, groupScope(OTHER_GROUP));
    }
  }

  it('answers each route as its declaration says, for every kind of caller', async () => {
    const wrong: string[] = [];
    for (const route of routes) {
      const outcomes = expected(route);
      for (const column of COLUMNS) {
        const want = outcomes[column];
        if (want === '—') continue;
        const key = await credential(route, column);
        if (key === undefined) continue;
        for (const method of route.tried) {
          // Expired: the token was good for 60 s; the clock moves past it for this request alone.
          const saved = clock;
          if (column === 'expired token') clock += 61_000;
          const answer = await server.request(method, pathOf(route), {
            key,
            ...(method !== 'GET' && method !== 'DELETE' && { body: {} }),
            timeoutMs: 10_000,
          });
          clock = saved;
          const got = answer.status === 401 ? '401' : answer.status === 403 ? '403' : 'allowed';
          if (got !== want && !(want === 'scoped' && got !== '401')) {
            wrong.push(
              `${method} ${route.url} [${column}]: ${want}, got ${String(answer.status)} ${answer.text.slice(0, 160)}`,
            );
          }
        }
      }
    }
    assert.deepEqual(wrong, []);
  });

  it('is the matrix SECURITY.md shows', () => {
    const document = readFileSync(SECURITY_MD, 'utf8');
    const [, shown] = document.split(MARKER);
    const rendered = table(routes);
    assert.ok(shown !== undefined, `SECURITY.md has no ${MARKER} section`);
    assert.equal(
      shown.trim().split('\n\n')[0],
      rendered,
      `SECURITY.md's matrix is stale; put this after ${MARKER}:\n\n${rendered}`,
    );
  });

  it('answers each sandbox route to that sandbox’s tokens alone', async () => {
    const sandboxOf = async () => {
      const made = await server.request('POST', '/v2/sandboxes', {
        key: everything.key,
        body: { templateID: 'base' },
      });
      assert.equal(made.status, 201, made.text);
      return made.json as { sandboxID: string; envdAccessToken: string; trafficAccessToken: string };
    };
    const [sandbox, other, killed] = await Promise.all([sandboxOf(), sandboxOf(), sandboxOf()]);
    const gone = await server.request('DELETE', `/sandboxes/${killed.sandboxID}`, { key: everything.key });
    assert.equal(gone.status, 204);
    const headersFor = (column: SandboxColumn): Record<string, string> => {
      switch (column) {
        case 'no credential':
        case 'key with every role':
          return {};
        case 'another sandbox’s token':
          return { 'x-access-token': other.envdAccessToken };
        case 'its traffic token':
          return { 'e2b-traffic-access-token': sandbox.trafficAccessToken };
        case 'its access token':
          return { 'x-access-token': sandbox.envdAccessToken };
        case 'a killed sandbox’s token':
          return { 'x-access-token': killed.envdAccessToken };
      }
    };
    const wrong: string[] = [];
    for (const route of sandboxRoutes) {
      const outcomes = sandboxExpected(route);
      for (const column of SANDBOX_COLUMNS) {
        const target = column === 'a killed sandbox’s token' ? killed : sandbox;
        const path = route.url.replace(/:[A-Za-z]+/g, 'x1').replace('*', 'anything');
        for (const method of route.tried) {
          const answer = await server.request(method, `${path}?path=%2Ftmp%2Fx`, {
            key: column === 'key with every role' ? everything.key : null,
            headers: { 'e2b-sandbox-id': target.sandboxID, ...headersFor(column) },
            ...(method === 'POST' && { body: {} }),
            timeoutMs: 10_000,
          });
          const status = answer.status;
          const got = status === 401 || status === 403 || status === 502 ? String(status) : 'allowed';
          if (got !== outcomes[column]) {
            wrong.push(
              `${method} ${route.url} [${column}]: ${outcomes[column]}, got ${status} ${answer.text.slice(0, 160)}`,
            );
          }
        }
      }
    }
    assert.deepEqual(wrong, []);
  });

  it('is the sandbox matrix SECURITY.md shows', () => {
    const [, shown] = readFileSync(SECURITY_MD, 'utf8').split(SANDBOX_MARKER);
    const rendered = sandboxTable(sandboxRoutes);
    assert.ok(shown !== undefined, `SECURITY.md has no ${SANDBOX_MARKER} section`);
    assert.equal(
      shown.trim().split('\n\n')[0],
      rendered,
      `SECURITY.md's sandbox matrix is stale; put this after ${SANDBOX_MARKER}:\n\n${rendered}`,
    );
  });

  it('applies the same step to a WebSocket upgrade, before anything else is read', async () => {
    /** The status line a raw upgrade request to the pool endpoint gets. */
    const upgrade = (key: string | null, pool = POOL) =>
      new Promise<string>((resolve, reject) => {
        const { port, hostname } = new URL(server.url);
        const socket = connect(Number(port), hostname);
        let received = '';
        socket.on('data', (chunk: Buffer) => {
          received += chunk.toString();
          if (received.includes('\r\n')) {
            socket.destroy();
            resolve(received.split('\r\n')[0]!);
          }
        });
        socket.on('error', reject);
        socket.write(
          [
            `GET /subscriptions/${SUBSCRIPTION}/resourceGroups/${RESOURCE_GROUP}/sessionPools/${pool}/ws?identifier=u1 HTTP/1.1`,
            `Host: ${hostname}:${port}`,
            ...(key === null ? [] : [`Authorization: Bearer ${key}`]),
            'Connection: Upgrade',
            'Upgrade: websocket',
            'Sec-WebSocket-Version: 13',
            'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==',
            '',
            '',
          ].join('\r\n'),
        );
      });
    const executor = await scoped(['SessionExecutor'], armPath(POOL));
    assert.match(await upgrade(null), / 401 /, 'no credential');
    assert.match(await upgrade(revoked.key), / 401 /, 'a revoked key');
    assert.match(await upgrade(await scoped(['Reader'], armPath(POOL))), / 403 /, 'a Reader');
    assert.match(await upgrade(executor, OTHER_POOL), / 403 /, 'another pool');
    // Admitted: this pool runs no container, which only now is said.
    assert.match(await upgrade(executor), / 404 /, 'admitted, to no container');
  });
});
