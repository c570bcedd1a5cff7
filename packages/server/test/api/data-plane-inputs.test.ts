import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { FakeLauncher } from '../fake-launcher.js';
import {
  DATA,
  armPath,
  createPool,
  interpreterPool,
  newKey,
  poolPath,
  startTestServer,
} from '../server-harness.js';

const upload = (name: string, content: string | Uint8Array, field = 'file') => {
  const form = new FormData();
  form.append(field, new Blob([content]), name);
  return form;
};

describe('data plane: every bad input is a 4xx with a stable code', async () => {
  const server = await startTestServer('inputs', {
    launcher: new FakeLauncher(),
    env: { SANDPOOL_UPLOAD_MAX_BYTES: '1024' },
  });
  await createPool(server, 'pool', interpreterPool({ max: 2, ready: 0 }));
  await createPool(server, 'shell', interpreterPool({ max: 2, ready: 0, containerType: 'Shell' }));
  const atShell = (path: string) => `${poolPath('shell')}/${path}?${DATA}&identifier=user-1`;
  const at = (path: string, identifier = 'user-1') =>
    `${poolPath('pool')}/${path}?${DATA}&identifier=${encodeURIComponent(identifier)}`;

  const cases: [
    string,
    () => Promise<{ status: number; json: { error?: { code: string } } }>,
    number,
    string,
  ][] = [
    [
      'a missing identifier',
      () => server.request('POST', `${poolPath('pool')}/executions?${DATA}`, { body: { code: '1' } }),
      400,
      'InvalidIdentifier',
    ],
    [
      'an identifier with a space',
      () => server.request('POST', at('executions', 'a b'), { body: { code: '1' } }),
      400,
      'InvalidIdentifier',
    ],
    [
      'an identifier with a control character',
      () => server.request('POST', at('executions', 'a\u0001b'), { body: { code: '1' } }),
      400,
      'InvalidIdentifier',
    ],
    [
      'an identifier over 256 characters',
      () => server.request('POST', at('executions', 'x'.repeat(257)), { body: { code: '1' } }),
      400,
      'InvalidIdentifier',
    ],
    [
      'a missing api-version',
      () => server.request('POST', `${poolPath('pool')}/executions?identifier=u`, { body: { code: '1' } }),
      400,
      'MissingApiVersionParameter',
    ],
    [
      'an unknown api-version',
      () =>
        server.request('POST', `${poolPath('pool')}/executions?api-version=1999-01-01&identifier=u`, {
          body: { code: '1' },
        }),
      400,
      'InvalidApiVersionParameter',
    ],
    [
      'an unknown pool',
      () =>
        server.request('POST', `${poolPath('nosuchpool')}/executions?${DATA}&identifier=u`, {
          body: { code: '1' },
        }),
      404,
      'ResourceNotFound',
    ],
    [
      'malformed JSON',
      () =>
        server.request('POST', at('executions'), {
          raw: '{"code": ',
          headers: { 'content-type': 'application/json' },
        }),
      400,
      'InvalidRequestContent',
    ],
    [
      'a JSON array body',
      () => server.request('POST', at('executions'), { body: [1] }),
      400,
      'InvalidRequestContent',
    ],
    [
      'no code',
      () => server.request('POST', at('executions'), { body: { executionType: 'Synchronous' } }),
      400,
      'InvalidParameter',
    ],
    [
      'code that is a number',
      () => server.request('POST', at('executions'), { body: { code: 5 } }),
      400,
      'InvalidParameter',
    ],
    [
      'a timeout over 220 s',
      () => server.request('POST', at('executions'), { body: { code: '1', timeoutInSeconds: 221 } }),
      400,
      'InvalidParameter',
    ],
    [
      'a negative output limit',
      () => server.request('POST', at('executions'), { body: { code: '1', outputStreamsMaxLength: -1 } }),
      400,
      'InvalidParameter',
    ],
    [
      'an unknown execution type',
      () => server.request('POST', at('executions'), { body: { code: '1', executionType: 'Eventually' } }),
      400,
      'InvalidParameter',
    ],
    [
      'invalid base64 code',
      () =>
        server.request('POST', at('executions'), { body: { code: '!!!', codeInputType: 'InlineBase64' } }),
      400,
      'InvalidParameter',
    ],
    [
      'a shell command on a Python pool',
      () => server.request('POST', at('executions'), { body: { shellCommand: 'ls' } }),
      400,
      'InvalidParameter',
    ],
    [
      'Python code on a Shell pool',
      () => server.request('POST', atShell('executions'), { body: { code: 'print(1)' } }),
      400,
      'InvalidParameter',
    ],
    [
      'a Shell execution without shellCommand',
      () => server.request('POST', atShell('executions'), { body: { timeoutInSeconds: 5 } }),
      400,
      'InvalidParameter',
    ],
    [
      'a shellCommand that is not a string',
      () => server.request('POST', atShell('executions'), { body: { shellCommand: ['ls'] } }),
      400,
      'InvalidParameter',
    ],
    [
      'an unknown shellType',
      () =>
        server.request('POST', atShell('executions'), { body: { shellCommand: 'ls', shellType: 'fish' } }),
      400,
      'InvalidParameter',
    ],
    [
      'a legacy code/execute call on a Shell pool',
      () =>
        server.request(
          'POST',
          `${poolPath('shell')}/code/execute?api-version=2024-02-02-preview&identifier=u`,
          {
            body: { properties: { code: '1' } },
          },
        ),
      400,
      'InvalidParameter',
    ],
    [
      'an invalid operation-id',
      () =>
        server.request('POST', at('executions'), { body: { code: '1' }, headers: { 'operation-id': 'a/b' } }),
      400,
      'InvalidParameter',
    ],
    [
      'an unsupported content type',
      () =>
        server.request('POST', at('executions'), { raw: 'code', headers: { 'content-type': 'text/csv' } }),
      415,
      'UnsupportedMediaType',
    ],
    ['an unknown execution id', () => server.request('GET', at('executions/nope')), 404, 'ExecutionNotFound'],
    [
      'a traversing file name',
      () => server.request('GET', at('files/..%2F..%2Fetc%2Fpasswd/content')),
      400,
      'InvalidFileName',
    ],
    [
      'a traversing directory',
      () => server.request('GET', `${at('files')}&path=..%2F..`),
      400,
      'InvalidFileName',
    ],
    ['a missing file', () => server.request('GET', at('files/nothing.txt')), 404, 'FileNotFound'],
    [
      'an upload that is not multipart',
      () => server.request('POST', at('files'), { body: { file: 'x' } }),
      400,
      'InvalidRequestContent',
    ],
    [
      'an upload in the wrong field',
      () => server.request('POST', at('files'), { raw: upload('a.txt', 'x', 'document') }),
      400,
      'InvalidRequestContent',
    ],
    [
      'an upload past the size cap',
      () => server.request('POST', at('files'), { raw: upload('big.bin', new Uint8Array(4096)) }),
      413,
      'PayloadTooLarge',
    ],
    [
      'an upload named ..',
      () => server.request('POST', at('files'), { raw: upload('..', 'x') }),
      400,
      'InvalidFileName',
    ],
    [
      'a truncated multipart body',
      () =>
        server.request('POST', at('files'), {
          raw: '--XYZ\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\nabc',
          headers: { 'content-type': 'multipart/form-data; boundary=XYZ' },
        }),
      400,
      'InvalidRequestContent',
    ],
    [
      'a legacy execute without code',
      () =>
        server.request(
          'POST',
          `${poolPath('pool')}/code/execute?api-version=2024-02-02-preview&identifier=user-1`,
          {
            body: { properties: { codeInputType: 'inline' } },
          },
        ),
      400,
      'InvalidParameter',
    ],
    [
      'a pre-release execute without an identifier anywhere',
      () =>
        server.request('POST', `${poolPath('pool')}/python/execute?api-version=2024-02-02-preview`, {
          body: { properties: { pythonCode: '1' } },
        }),
      400,
      'InvalidIdentifier',
    ],
    [
      'a pre-release download without a filename',
      () =>
        server.request(
          'GET',
          `${poolPath('pool')}/python/downloadFile?api-version=2024-02-02-preview&identifier=user-1`,
        ),
      400,
      'InvalidFileName',
    ],
    [
      'GET session of an identifier with none',
      () => server.request('GET', at('session', 'nobody')),
      404,
      'SessionNotFound',
    ],
    [
      'a negative listSessions skip',
      () => server.request('GET', `${poolPath('pool')}/listSessions?${DATA}&skip=-1`),
      400,
      'InvalidParameter',
    ],
  ];
  for (const [what, send, status, code] of cases) {
    it(`answers ${what} with ${status} ${code}`, async () => {
      const response = await send();
      assert.equal(response.status, status, JSON.stringify(response.json));
      assert.equal(response.json.error?.code, code);
    });
  }

  it('reads execution bodies with keys and enums in any case, ignoring unknown fields', async () => {
    const run = await server.request('POST', at('executions', 'casing'), {
      body: { CODE: 'print(1)', ExecutionType: 'SYNCHRONOUS', codeinputtype: 'INLINE', clientHint: { x: 1 } },
    });
    assert.equal(run.status, 200, run.text);
    assert.equal(run.json.status, 'Succeeded');
    assert.equal(run.json.executionType, 'Synchronous');
    await server.request('DELETE', at('session', 'casing'));
  });

  it('accepts, URL-encoded, every character the 2025-10-02-preview identifier rule allows', async () => {
    const identifier = 'a_|}{[]:";\'<>?/.,@#$%^&*()-+=!~`Z9';
    const run = await server.request('POST', at('executions', identifier), { body: { code: '1' } });
    assert.equal(run.status, 200, run.text);
    assert.equal(run.json.identifier, identifier);
    const session = await server.request('GET', at('session', identifier));
    assert.equal(session.json.identifier, identifier);
    await server.request('DELETE', at('session', identifier));
  });

  it('leaves nothing behind from a refused upload', async () => {
    const listed = await server.request('GET', at('files'));
    assert.deepEqual(listed.json.value, []);
  });

  it('answers a caller without a role on the pool 403 before it reads the identifier', async () => {
    const outsider = await newKey(server, [`SessionExecutor:${armPath('elsewhere')}`]);
    const answer = await server.request('POST', at('executions', 'not valid: spaces'), {
      key: outsider.key,
      body: { code: '1' },
    });
    assert.equal(answer.status, 403, 'an invalid identifier would say the pool exists');
  });

  it('claims no session for a request it refuses: the request is checked before the claim', async () => {
    const refusals = [
      ['POST', 'executions', { body: { codeInput: 1 } }],
      ['POST', 'processes', { body: { command: 7 } }],
      ['GET', 'files/..%2Fetc/content', {}],
    ] as const;
    for (const [i, [method, path, options]] of refusals.entries()) {
      const identifier = `refused-${String(i)}`;
      const refused = await server.request(method, at(path, identifier), options);
      assert.equal(refused.status, 400, `${method} ${path}: ${refused.text}`);
      assert.equal((await server.request('GET', at('session', identifier))).status, 404, 'no session');
    }
  });

  it('answers a full pool with 429 SessionPoolFull and a Retry-After', async () => {
    await server.request('POST', at('executions', 'a'), { body: { code: '1' } });
    await server.request('POST', at('executions', 'b'), { body: { code: '1' } });
    const full = await server.request('POST', at('executions', 'c'), { body: { code: '1' } });
    assert.equal(full.status, 429);
    assert.equal(full.json.error.code, 'SessionPoolFull');
    assert.equal(full.headers.get('retry-after'), '1');
    // Labelled JSON with no body, as some clients send it.
    const deleted = await server.request('DELETE', at('session', 'a'), {
      headers: { 'content-type': 'application/json' },
    });
    assert.equal(deleted.status, 204);
    assert.equal((await server.request('POST', at('executions', 'c'), { body: { code: '1' } })).status, 200);
  });
});

describe('strict Azure parity for a full pool', async () => {
  const server = await startTestServer('parity', {
    launcher: new FakeLauncher(),
    env: { SANDPOOL_POOL_FULL_STATUS: '404' },
  });
  await createPool(server, 'pool', interpreterPool({ max: 1, ready: 0 }));

  it('answers 404 with the same code when configured', async () => {
    const at = (id: string) => `${poolPath('pool')}/executions?${DATA}&identifier=${id}`;
    assert.equal((await server.request('POST', at('a'), { body: { code: '1' } })).status, 200);
    const full = await server.request('POST', at('b'), { body: { code: '1' } });
    assert.equal(full.status, 404);
    assert.equal(full.json.error.code, 'SessionPoolFull');
  });
});
