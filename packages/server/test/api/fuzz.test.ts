/**
 * Property-based fuzzing of every endpoint the OpenAPI document lists (fast-check): random path
 * segments, api-versions, identifiers and file names (unicode, control characters, bad escapes,
 * huge), and bodies (random JSON, malformed JSON, deep nesting, wrong content types, truncated
 * multipart). Properties: never a 5xx, and every error is Azure's body with a code of the registry
 * that the x-ms-error-code header repeats. Then each class of bad input is pinned to its code, and
 * slow clients are shown not to hold up anyone else.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { describe, it } from 'node:test';

import fc from 'fast-check';

import { wireOfPath } from '../../src/api/errors.js';
import { ErrorCode } from '../../src/errors.js';
import { FakeLauncher } from '../fake-launcher.js';
import {
  DATA,
  MGMT,
  RESOURCE_GROUP,
  SUBSCRIPTION,
  createPool,
  interpreterPool,
  poolPath,
  startTestServer,
} from '../server-harness.js';

const document = JSON.parse(readFileSync(new URL('../../../../openapi.json', import.meta.url), 'utf8')) as {
  paths: Record<string, Record<string, unknown>>;
};
const METHODS = ['get', 'put', 'post', 'patch', 'delete'];
const operations = Object.entries(document.paths).flatMap(([path, item]) =>
  Object.keys(item)
    .filter((method) => METHODS.includes(method))
    .map((method) => ({ method: method.toUpperCase(), path })),
);
const CODES = new Set<string>(Object.values(ErrorCode));

/** Text that stresses parsers: any unicode, control characters, path tricks, bad escapes, sizes. */
const nastyText = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.constantFrom(
    '',
    '.',
    '..',
    '../..',
    '%',
    '%zz',
    '%00',
    '%2e%2e',
    '%2F',
    'a\u0000b',
    '\u202e',
    '😀',
    'CON',
    ' ',
  ),
  fc.string({ unit: 'grapheme', minLength: 300, maxLength: 2000 }),
);
/** A path segment: mostly well-formed and percent-encoded, sometimes raw (bad escapes pass through). */
const segment = (valid: string) =>
  fc.oneof(
    { weight: 3, arbitrary: fc.constant(valid) },
    { weight: 2, arbitrary: nastyText.map(encodeURIComponent) },
    { weight: 1, arbitrary: fc.constantFrom('%', '%zz', '%E0%A4%A', '..', '%2e%2e', 'a%2Fb') },
  );
const queryValue = (valid: string[]) =>
  fc.oneof(
    { weight: 3, arbitrary: fc.constantFrom(...valid) },
    { weight: 2, arbitrary: nastyText.map(encodeURIComponent) },
    { weight: 1, arbitrary: fc.constantFrom('%', '%zz', '%ff%fe') },
  );

const multipart = (boundary: string, parts: string) =>
  `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${parts}"\r\nContent-Type: application/octet-stream\r\n\r\n`;
const body = fc.oneof(
  fc.constant(undefined),
  fc.jsonValue({ maxDepth: 4 }).map((v) => ({ type: 'application/json', data: JSON.stringify(v) })),
  fc
    .record({ code: fc.oneof(fc.string(), fc.integer(), fc.constant(null)), properties: fc.anything() })
    .map((v) => ({ type: 'application/json', data: JSON.stringify(v) })),
  fc.string({ unit: 'binary', maxLength: 200 }).map((data) => ({ type: 'application/json', data })),
  fc.integer({ min: 1000, max: 20_000 }).map((depth) => ({
    type: 'application/json',
    data: '['.repeat(depth) + ']'.repeat(depth),
  })),
  fc.tuple(fc.string({ maxLength: 20 }), nastyText).map(([boundary, name]) => ({
    type: `multipart/form-data; boundary=${boundary || 'x'}`,
    data: multipart(boundary || 'x', name).slice(0, 40 + (name.length % 80)),
  })),
  fc
    .tuple(
      fc.constantFrom('text/plain', 'application/xml', 'application/x-www-form-urlencoded', ''),
      fc.string(),
    )
    .map(([type, data]) => ({ type, data })),
);

/** The front door a path is at: Azure's, or E2B's (whose errors are E2B's body, or Connect's for envd's calls). */
const formOf = (path: string): 'azure' | 'e2b' => (wireOfPath(path) === 'e2b' ? 'e2b' : 'azure');

describe('API fuzzing: never a 5xx, always a stable error code', async () => {
  const server = await startTestServer('fuzz', {
    launcher: new FakeLauncher(),
    env: { SANDPOOL_RATE_LIMIT_PER_PRINCIPAL: '0', SANDPOOL_RATE_LIMIT_PER_IDENTIFIER: '0' },
  });
  // The fuzzer may delete or replace `fuzz`; the tests after it use `steady`, which it never names.
  await createPool(server, 'fuzz', interpreterPool({ max: 600, ready: 0 }));
  await createPool(server, 'steady', interpreterPool({ max: 600, ready: 0 }));

  const request = fc.record({
    operation: fc.constantFrom(...operations),
    subscription: segment(SUBSCRIPTION),
    resourceGroup: segment(RESOURCE_GROUP),
    name: segment('fuzz'),
    other: segment('x'),
    apiVersion: fc.option(
      queryValue(['2025-07-01', '2025-02-02-preview', '2024-02-02-preview', '2025-10-02-preview']),
    ),
    identifier: fc.option(queryValue(['user-1', 'user-2'])),
    extra: fc.option(
      fc.tuple(fc.string({ maxLength: 10 }).map(encodeURIComponent), queryValue(['1', 'true'])),
    ),
    body,
  });

  it('answers every request to every endpoint below 500, with a registered code on each error', async () => {
    await fc.assert(
      fc.asyncProperty(request, async (r) => {
        const path = r.operation.path
          .replace('{subscription}', r.subscription)
          .replace('{resourceGroup}', r.resourceGroup)
          .replace(/\{(name|pool)\}/, r.name)
          .replace(/\{\w+\}/g, r.other);
        const query = [
          r.apiVersion !== null && `api-version=${r.apiVersion}`,
          r.identifier !== null && `identifier=${r.identifier}`,
          r.extra && `${r.extra[0]}=${r.extra[1]}`,
        ].filter(Boolean);
        const headers: Record<string, string> = {};
        if (r.body) headers['content-type'] = r.body.type;
        const response = await server.request(r.operation.method, `${path}?${query.join('&')}`, {
          headers,
          timeoutMs: 5_000,
          ...(r.body && r.operation.method !== 'GET' && { raw: r.body.data }),
        });
        // The path as sent: `..` segments are resolved by the client, so a path may land elsewhere.
        const registered = response.headers.get('x-ms-error-code');
        // Headers too large are refused by Node's parser, before any path is known: Azure's body.
        const form =
          registered === 'RequestHeadersTooLarge' ? 'azure' : formOf(new URL(path, server.url).pathname);
        // E2B's front door answers a sandbox (or its port) that does not run 502, and what Sandpool lacks 501, as
        // E2B's SDKs expect (docs/e2b.md); nothing else is a 5xx.
        const deliberate =
          form !== 'azure' &&
          ((response.status === 502 &&
            (registered === 'SandboxNotRunning' || registered === 'SandboxPortClosed')) ||
            (response.status === 501 && registered === 'NotSupported'));
        assert.ok(response.status < 500 || deliberate, `${response.status} ${response.text.slice(0, 300)}`);
        if (response.status >= 400) {
          assert.ok(
            registered !== null && CODES.has(registered),
            `unregistered code in ${response.text.slice(0, 300)}`,
          );
          const body = response.json as
            { error?: { code?: unknown }; code?: unknown; error_code?: unknown } | undefined;
          // Connect's body for an envd call a route took; E2B's for the rest of its front door.
          const shape = body?.error ? 'azure' : typeof body?.code === 'string' ? 'connect' : 'e2b';
          assert.equal(
            shape === 'azure',
            form === 'azure',
            `${form} path, ${shape} body: ${response.text.slice(0, 300)}`,
          );
          if (shape === 'azure') assert.equal(body?.error?.code, registered);
          if (shape === 'e2b') {
            assert.equal(body?.error_code, registered);
            assert.equal(body.code, response.status);
          }
          if (shape === 'connect') assert.match(String(body?.code), /^[a-z_]+$/);
        }
      }),
      { numRuns: 1500, includeErrorInReport: true, endOnFailure: true },
    );
    assert.equal((await server.request('GET', '/healthz', { key: null })).status, 200);
  });

  const at = (path: string, identifier = 'user-1') =>
    `${poolPath('steady')}/${path}?${DATA}&identifier=${encodeURIComponent(identifier)}`;

  it('gives each class of bad input its own code, whatever the input', async () => {
    const classes: [string, fc.Arbitrary<() => Promise<{ json: any; status: number }>>, number, string][] = [
      [
        'malformed JSON',
        fc
          .string({ minLength: 1 })
          .filter((s) => {
            try {
              JSON.parse(s);
              return false;
            } catch {
              return true;
            }
          })
          .map(
            (raw) => () =>
              server.request('POST', at('executions'), {
                raw,
                headers: { 'content-type': 'application/json' },
              }),
          ),
        400,
        'InvalidRequestContent',
      ],
      [
        'an unknown api-version',
        fc
          .string({ minLength: 1, maxLength: 30 })
          .filter((v) => !/^\d{4}-\d{2}-\d{2}/.test(v))
          .map(
            (v) => () =>
              server.request(
                'GET',
                `${poolPath('steady')}/listSessions?api-version=${encodeURIComponent(v)}`,
              ),
          ),
        400,
        'InvalidApiVersionParameter',
      ],
      [
        'an identifier with a control character',
        fc
          .tuple(fc.string({ maxLength: 10 }), fc.integer({ min: 0, max: 31 }), fc.string({ maxLength: 10 }))
          .map(([a, c, b]) => `${a}${String.fromCharCode(c)}${b}`)
          .map((identifier) =>
            Object.assign(
              () => server.request('POST', at('executions', identifier), { body: { code: '1' } }),
              {
                toString: () => JSON.stringify(identifier),
              },
            ),
          ),
        400,
        'InvalidIdentifier',
      ],
      [
        'a file name or directory with a dot segment, an empty segment or a NUL',
        fc
          .tuple(
            fc.stringMatching(/^[a-z0-9_-]{1,12}$/),
            fc.constantFrom(
              '..',
              '../{a}',
              '{a}/../../etc',
              '/mnt/data/../{a}',
              '{a}//x',
              '{a}\u0000',
              './{a}',
            ),
            fc.constantFrom('files/{name}', 'files/{name}/content', 'files?path={name}'),
          )
          // A bare `..` as a path segment never reaches a file route (404 RouteNotFound): only as `path`.
          .filter(([, shape, route]) => shape !== '..' || route.includes('?'))
          .map(([a, shape, route]) => {
            const name = shape.replaceAll('{a}', a);
            // Dots escaped too: a client would otherwise resolve `..` before sending.
            const path = route.replace('{name}', encodeURIComponent(name).replaceAll('.', '%2E'));
            const [route_, query = ''] = path.split('?');
            const url = `${at(route_!)}${query && `&${query}`}`;
            return Object.assign(() => server.request('GET', url), { toString: () => url });
          }),
        400,
        'InvalidFileName',
      ],
      [
        'a body of a media type the API does not read',
        fc
          .constantFrom('application/xml', 'image/png', 'application/octet-stream')
          .map(
            (type) => () =>
              server.request('POST', at('executions'), { raw: 'x', headers: { 'content-type': type } }),
          ),
        415,
        'UnsupportedMediaType',
      ],
      [
        'a wrong type for a field',
        fc
          .oneof(
            fc.integer(),
            fc.boolean(),
            fc.array(fc.string()),
            // A `__proto__` or `constructor` key is another class: the JSON parser refuses the whole
            // body (InvalidRequestContent) before any field is read.
            fc.object({ key: fc.string().filter((key) => key !== '__proto__' && key !== 'constructor') }),
          )
          .map((code) => () => server.request('POST', at('executions'), { body: { code } })),
        400,
        'InvalidParameter',
      ],
      [
        'headers over 16 KiB',
        fc.integer({ min: 17_000, max: 64_000 }).map(
          (size) => () =>
            server.request('GET', `${poolPath('steady')}/listSessions?${DATA}`, {
              headers: { 'x-big': 'a'.repeat(size) },
            }),
        ),
        431,
        'RequestHeadersTooLarge',
      ],
      [
        'a path with a malformed percent-escape',
        fc
          .constantFrom('%', '%zz', '%E0%A4%A', '%ff')
          .map(
            (bad) => () => server.request('GET', `${poolPath('steady')}/files/${bad}?${DATA}&identifier=u`),
          ),
        400,
        'InvalidUrl',
      ],
    ];
    for (const [what, arbitrary, status, code] of classes) {
      await fc.assert(
        fc.asyncProperty(arbitrary, async (send) => {
          const response = await send();
          assert.equal(`${response.status} ${response.json?.error?.code}`, `${status} ${code}`, what);
        }),
        { numRuns: 60, includeErrorInReport: true },
      );
    }
  });

  it('answers bytes that are not HTTP in the same error shape', async () => {
    const { hostname, port } = new URL(server.url);
    const socket = connect(Number(port), hostname);
    socket.write('GARBAGE \u0000 / HTTP/9\r\n\r\n');
    const answer = await new Promise<string>((resolve) => {
      let text = '';
      socket.on('data', (chunk: Buffer) => (text += chunk.toString()));
      socket.on('close', () => resolve(text));
      socket.on('error', () => undefined);
    });
    assert.match(answer, /^HTTP\/1\.1 400 Bad Request\r\n/);
    assert.match(answer, /x-ms-error-code: InvalidRequestContent/);
    assert.equal(
      JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4)).error.code,
      'InvalidRequestContent',
    );
  });

  it('answers others at once while slow clients trickle their requests', async () => {
    const { hostname, port } = new URL(server.url);
    const slow = Array.from({ length: 50 }, () => connect(Number(port), hostname));
    for (const socket of slow) {
      socket.on('error', () => undefined);
      socket.write(`POST ${at('executions')} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n`);
    }
    const trickle = setInterval(() => slow.forEach((s) => s.write('X-Slow: 1\r\n')), 100);
    try {
      for (let i = 0; i < 20; i++) {
        const response = await server.request('GET', `${poolPath('steady')}/listSessions?${DATA}`);
        assert.equal(response.status, 200);
      }
    } finally {
      clearInterval(trickle);
      slow.forEach((s) => s.destroy());
    }
    const management = await server.request(
      'GET',
      `/subscriptions/${SUBSCRIPTION}/providers/Microsoft.App/sessionPools?${MGMT}`,
    );
    assert.equal(management.status, 200);
  });
});
