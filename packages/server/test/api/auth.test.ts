import assert from 'node:assert/strict';
import { createServer, request as httpRequest } from 'node:http';
import { after, describe, it } from 'node:test';

import { SignJWT, exportJWK, generateKeyPair } from 'jose';

import { FakeLauncher } from '../fake-launcher.js';
import {
  DATA,
  MGMT,
  armPath,
  createPool,
  poolPath,
  interpreterPool,
  startTestServer,
} from '../server-harness.js';

/** An OIDC issuer on loopback: its JWKS and a way to sign tokens with its key. */
async function startIssuer() {
  const { privateKey, publicKey } = await generateKeyPair('RS256');
  const jwks = { keys: [{ ...(await exportJWK(publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' }] };
  const http = createServer((_request, response) => {
    response.setHeader('content-type', 'application/json');
    response.end(JSON.stringify(jwks));
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  after(() => http.close());
  const address = http.address() as { port: number };
  const issuer = `http://127.0.0.1:${address.port}/tenant`;
  const sign = (claims: Record<string, unknown>, audience = 'https://dynamicsessions.io', expiresIn = '5m') =>
    new SignJWT(claims)
      .setProtectedHeader({ alg: 'RS256', kid: 'k1' })
      .setIssuer(issuer)
      .setSubject('app-1')
      .setAudience(audience)
      .setIssuedAt()
      .setExpirationTime(expiresIn)
      .sign(privateKey);
  return { issuer, jwksUri: `http://127.0.0.1:${address.port}/keys`, sign };
}

describe('authentication and roles', async () => {
  const idp = await startIssuer();
  const server = await startTestServer('auth', {
    launcher: new FakeLauncher(),
    env: { SANDPOOL_OIDC_ISSUERS: JSON.stringify([{ issuer: idp.issuer, jwksUri: idp.jwksUri }]) },
  });
  await createPool(server, 'one', interpreterPool({ ready: 0 }));
  await createPool(server, 'two', interpreterPool({ ready: 0 }));

  const newKey = async (roles: string[]) => {
    const created = await server.request('POST', '/sandpool/apiKeys', {
      body: { name: roles.join(',').slice(0, 128), roles },
    });
    assert.equal(created.status, 201, created.text);
    return created.json as { id: string; key: string };
  };
  const run = (pool: string, key: string | null) =>
    server.request('POST', `${poolPath(pool)}/executions?${DATA}&identifier=user-1`, {
      body: { code: '1' },
      key,
    });
  const getPool = (pool: string, key: string | null) =>
    server.request('GET', `${armPath(pool)}?${MGMT}`, { key });
  const putPool = (pool: string, key: string | null) =>
    server.request('PUT', `${armPath(pool)}?${MGMT}`, { body: interpreterPool({ ready: 0 }), key });

  it('answers 401 in the ARM shape without a valid credential', async () => {
    for (const key of [
      null,
      'sp_0123456789ab_wrongwrongwrongwrongwrongwrongwrongwrongwro',
      'not-a-token',
      'a.b.c',
    ]) {
      const response = await getPool('one', key);
      assert.equal(response.status, 401, String(key));
      assert.equal(response.json.error.code, 'AuthenticationFailed');
      assert.equal(response.headers.get('www-authenticate'), 'Bearer realm="sandpool"');
    }
    const basic = await server.request('GET', `${armPath('one')}?${MGMT}`, {
      key: null,
      headers: { authorization: 'Basic eDp5' },
    });
    assert.equal(basic.status, 401);
  });

  it('exempts only the public routes themselves, whatever the raw path says', async () => {
    // fetch would resolve the dot segments; a raw request sends them as written.
    const raw = (path: string) =>
      new Promise<{ status: number; body: string }>((resolve, reject) => {
        const url = new URL(server.url);
        const request = httpRequest(
          { host: url.hostname, port: url.port, path, method: 'GET' },
          (response) => {
            let body = '';
            response.on('data', (chunk: Buffer) => (body += chunk.toString()));
            response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
          },
        );
        request.on('error', reject);
        request.end();
      });
    for (const path of [
      '/dashboard/../sandpool/apiKeys',
      '/dashboard/..%2fsandpool/apiKeys',
      '/healthz/../sandpool/apiKeys',
    ]) {
      const answer = await raw(path);
      assert.ok(!answer.body.includes('"value"'), `${path} leaked the key list: ${answer.body}`);
      assert.notEqual(answer.status, 200, path);
    }
    assert.equal((await raw('/sandpool/apiKeys')).status, 401);
    assert.equal((await raw('/healthz')).status, 200);
  });

  it('lets a Session Executor run code but not manage pools', async () => {
    const { key } = await newKey(['SessionExecutor']);
    assert.equal((await run('one', key)).status, 200);
    const denied = await getPool('one', key);
    assert.equal(denied.status, 403);
    assert.equal(denied.json.error.code, 'AuthorizationFailed');
    assert.match(denied.json.error.message, /pools\/read/);
  });

  it('scopes a grant to one pool', async () => {
    const { key } = await newKey([`SessionExecutor:${armPath('one')}`]);
    assert.equal((await run('one', key)).status, 200);
    assert.equal((await run('two', key)).status, 403);
  });

  it('lets a Reader look but not change or run', async () => {
    const { key } = await newKey(['Reader']);
    assert.equal((await getPool('one', key)).status, 200);
    assert.equal((await putPool('one', key)).status, 403);
    assert.equal((await run('one', key)).status, 403);
    assert.equal(
      (await server.request('GET', `${poolPath('one')}/listSessions?${DATA}`, { key })).status,
      200,
    );
  });

  it('lets a Contributor manage pools but not run code', async () => {
    const { key } = await newKey(['Contributor']);
    assert.equal((await putPool('three', key)).status, 201);
    assert.equal((await run('one', key)).status, 403);
  });

  it('lets a Contributor manage only keys within its scope, and only with roles it holds', async () => {
    const { id: scopedId, key: scoped } = await newKey([`Contributor:${armPath('one')}`]);
    const { id: otherId } = await newKey([`Reader:${armPath('two')}`]);
    const seen = await server.request('GET', '/sandpool/apiKeys', { key: scoped });
    assert.equal(seen.status, 200);
    const ids = seen.json.value.map((k: { id: string }) => k.id);
    assert.ok(ids.includes(scopedId), JSON.stringify(ids));
    assert.ok(!ids.includes(otherId), 'a key of another pool is not listed');
    assert.equal(ids.length, 1, 'nor the admin keys');
    const revokeOther = await server.request('DELETE', `/sandpool/apiKeys/${otherId}`, { key: scoped });
    assert.equal(revokeOther.status, 404);
    assert.equal(revokeOther.json.error.code, 'ApiKeyNotFound');
    const outside = await server.request('POST', '/sandpool/apiKeys', {
      body: { roles: [`Contributor:${armPath('two')}`] },
      key: scoped,
    });
    assert.equal(outside.status, 403);
    const { key: contributor } = await newKey(['Contributor']);
    const escalation = await server.request('POST', '/sandpool/apiKeys', {
      body: { roles: ['SessionExecutor'] },
      key: contributor,
    });
    assert.equal(escalation.status, 403);
    const bad = await server.request('POST', '/sandpool/apiKeys', { body: { roles: ['Owner'] } });
    assert.equal(bad.status, 400);
    assert.equal(bad.json.error.target, 'roles');
  });

  it('stops accepting a revoked key at once', async () => {
    const { id, key } = await newKey(['SessionExecutor']);
    assert.equal((await run('one', key)).status, 200);
    const listed = await server.request('GET', '/sandpool/apiKeys');
    assert.ok(listed.json.value.some((k: { id: string }) => k.id === id));
    assert.ok(!listed.text.includes(key), 'secrets are never listed');
    assert.equal((await server.request('DELETE', `/sandpool/apiKeys/${id}`)).status, 200);
    assert.equal((await run('one', key)).status, 401);
  });

  it('mints tokens carrying a subset of the caller’s grants', async () => {
    const minted = await server.request('POST', '/sandpool/tokens', {
      body: { roles: [`SessionExecutor:${armPath('one')}`], expiresInSeconds: 300 },
    });
    assert.equal(minted.status, 201);
    const token = minted.json.token as string;
    assert.equal((await run('one', token)).status, 200);
    assert.equal((await run('two', token)).status, 403);
    const { key } = await newKey([`SessionExecutor:${armPath('one')}`]);
    const wider = await server.request('POST', '/sandpool/tokens', {
      body: { roles: ['SessionExecutor'] },
      key,
    });
    assert.equal(wider.status, 403);
  });

  it('accepts tokens of a configured OIDC issuer for either Azure audience', async () => {
    for (const audience of ['https://dynamicsessions.io', 'https://acasessions.io/']) {
      const token = await idp.sign({ roles: ['SessionExecutor'] }, audience);
      assert.equal((await run('one', token)).status, 200, audience);
    }
  });

  it('refuses OIDC tokens with the wrong audience, expired, or from an unknown issuer', async () => {
    const wrongAudience = await idp.sign({ roles: ['SessionExecutor'] }, 'https://management.azure.com');
    assert.equal((await run('one', wrongAudience)).status, 401);
    const expired = await idp.sign({ roles: ['SessionExecutor'] }, 'https://dynamicsessions.io', '-1m');
    assert.equal((await run('one', expired)).status, 401);
    const noRoles = await idp.sign({});
    assert.equal((await run('one', noRoles)).status, 403);
    const stranger = await new SignJWT({ roles: ['SessionExecutor'] })
      .setProtectedHeader({ alg: 'HS256' })
      .setIssuer('https://evil.example')
      .setAudience('https://dynamicsessions.io')
      .setExpirationTime('5m')
      .sign(new Uint8Array(32));
    const response = await run('one', stranger);
    assert.equal(response.status, 401);
    assert.match(response.json.error.message, /not trusted/);
  });
});
