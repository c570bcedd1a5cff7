/**
 * The request sequences third-party clients send (reference §6), replayed as they send them, against
 * a server with real sandboxes; each test asserts the response fields that client reads.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { AzureDynamicSessionTool } from '@llamaindex/azure';

import {
  ADMIN_KEY,
  createPool,
  poolPath,
  interpreterPool,
  startTestServer,
  type TestServer,
} from '../server-harness.js';
import { skipReason } from './harness.js';

const V1 = 'api-version=2024-02-02-preview';
const PLOT = 'import matplotlib.pyplot as plt\nplt.plot([1, 2], [2, 1])\nplt.show()';

const multipart = (filename: string, content: string, type = 'application/octet-stream') => {
  const form = new FormData();
  form.append('file', new Blob([content], { type }), filename);
  return form;
};

describe('third-party clients, replayed', { skip: skipReason }, async () => {
  const server: TestServer = await startTestServer('clients');
  await createPool(server, 'clients', interpreterPool({ max: 12, ready: 2 }));
  const endpoint = poolPath('clients');
  const post = (path: string, body: string) =>
    server.request('POST', `${endpoint}/${path}`, {
      raw: body,
      headers: { 'content-type': 'application/json' },
    });

  it('LangChain SessionsPythonREPLTool (v1 code/execute, files/upload, files/content, files, DELETE session)', async () => {
    const id = 'langchain-1f0c';
    const run = await post(
      `code/execute?${V1}&identifier=${id}`,
      '{"properties": {"codeInputType": "inline", "executionType": "synchronous", "code": "x = 40\\nprint(x + 2)"}}',
    );
    assert.equal(run.status, 200);
    assert.equal(run.json.properties.stdout, '42\n');
    assert.equal(run.json.properties.stderr, '');
    assert.ok('result' in run.json.properties);

    const plot = await post(
      `code/execute?${V1}&identifier=${id}`,
      JSON.stringify({ properties: { codeInputType: 'inline', executionType: 'synchronous', code: PLOT } }),
    );
    assert.equal(plot.json.properties.result.type, 'image');
    assert.ok(plot.json.properties.result.base64_data.length > 100, 'LangChain strips base64_data from here');

    const uploaded = await server.request('POST', `${endpoint}/files/upload?${V1}&identifier=${id}`, {
      raw: multipart('data.csv', 'a,b\n1,2\n'),
    });
    assert.equal(uploaded.status, 200);
    assert.equal(uploaded.json.value[0].properties.filename, 'data.csv');
    assert.equal(uploaded.json.value[0].properties.size, 8);

    const content = await server.request(
      'GET',
      `${endpoint}/files/content/${encodeURIComponent('data.csv')}?${V1}&identifier=${id}`,
    );
    assert.equal(content.text, 'a,b\n1,2\n');
    const listed = await server.request('GET', `${endpoint}/files?${V1}&identifier=${id}`);
    assert.deepEqual(
      listed.json.value.map((f: any) => [f.properties.filename, f.properties.size]),
      [['data.csv', 8]],
    );
    const deleted = await server.request(
      'DELETE',
      `${endpoint}/session?api-version=2025-10-02-preview&identifier=${id}`,
    );
    assert.equal(deleted.status, 204);
  });

  it('Semantic Kernel Python SessionsPythonTool (v1, /mnt/data file names, timeoutInSeconds 100)', async () => {
    const id = 'sk-python-7a1e';
    const run = await post(
      `code/execute?${V1}&identifier=${id}`,
      '{"properties": {"codeInputType": "inline", "executionType": "synchronous", "code": "import os\\nos.getcwd()", "timeoutInSeconds": 100}}',
    );
    assert.equal(run.json.properties.status, 'Success');
    assert.equal(typeof run.json.properties.result, 'string');
    const uploaded = await server.request('POST', `${endpoint}/files/upload?${V1}&identifier=${id}`, {
      raw: multipart('/mnt/data/notes.txt', 'hello'),
    });
    assert.equal(uploaded.json.value[0].properties.filename, 'notes.txt');
    const read = await post(
      `code/execute?${V1}&identifier=${id}`,
      '{"properties": {"codeInputType": "inline", "executionType": "synchronous", "code": "open(\\"/mnt/data/notes.txt\\").read()", "timeoutInSeconds": 100}}',
    );
    assert.equal(read.json.properties.result, 'hello');
  });

  it('LangChain SessionsBashTool (Shell pool: executions with shellCommand, flat files, DELETE session)', async () => {
    await createPool(server, 'bash', interpreterPool({ max: 2, ready: 1, containerType: 'Shell' }));
    const bash = poolPath('bash');
    const id = 'langchain-bash-7e21';
    const query = `identifier=${id}&api-version=2025-02-02-preview`;
    const run = await server.request('POST', `${bash}/executions?${query}`, {
      raw: '{"shellCommand": "echo hello; ls /mnt/data | wc -l"}',
      headers: { 'content-type': 'application/json' },
    });
    assert.equal(run.status, 200, run.text);
    // The tool reads int(status) as the exit code, and result.stdout / result.stderr.
    assert.equal(Number.parseInt(run.json.status, 10), 0);
    assert.equal(run.json.result.stdout, 'hello\n0\n');
    assert.equal(run.json.result.stderr, '');
    const failing = await server.request('POST', `${bash}/executions?${query}`, {
      raw: '{"shellCommand": "exit 2"}',
      headers: { 'content-type': 'application/json' },
    });
    assert.equal(Number.parseInt(failing.json.status, 10), 2);
    const uploaded = await server.request('POST', `${bash}/files?${query}&path=/mnt/data`, {
      raw: multipart('notes.txt', 'abc'),
    });
    assert.equal(uploaded.json.name, 'notes.txt');
    assert.equal(uploaded.json.sizeInBytes, 3);
    const content = await server.request(
      'GET',
      `${bash}/files/${encodeURIComponent('notes.txt')}/content?${query}`,
    );
    assert.equal(content.text, 'abc');
    const listed = await server.request('GET', `${bash}/files?${query}`);
    assert.deepEqual(
      listed.json.value.map((f: any) => [f.name, f.sizeInBytes]),
      [['notes.txt', 3]],
    );
    const deleted = await server.request(
      'DELETE',
      `${bash}/session?identifier=${id}&api-version=2025-10-02-preview`,
    );
    assert.equal(deleted.status, 204);
  });

  it('Semantic Kernel .NET SessionsPythonPlugin, new (executions, flat files)', async () => {
    const id = 'sk-dotnet-new';
    const run = await post(
      `executions?api-version=2024-10-02-preview&identifier=${id}`,
      '{"codeInputType":"inline","executionType":"synchronous","timeoutInSeconds":100,"code":"print(\\"hi\\")\\n1 + 1"}',
    );
    assert.ok([200, 202].includes(run.status));
    assert.equal(run.json.status, 'Succeeded');
    assert.equal(run.json.result.executionResult, 2);
    assert.equal(run.json.result.stdout, 'hi\n');
    assert.equal(run.json.result.stderr, '');
    const uploaded = await server.request(
      'POST',
      `${endpoint}/files?api-version=2024-10-02-preview&identifier=${id}`,
      {
        raw: multipart('report.txt', 'r'),
      },
    );
    assert.equal(uploaded.json.name, 'report.txt');
    assert.equal(uploaded.json.sizeInBytes, 1);
    const listed = await server.request(
      'GET',
      `${endpoint}/files?api-version=2024-10-02-preview&identifier=${id}`,
    );
    const [file] = listed.json.value;
    assert.deepEqual(Object.keys(file).sort(), [
      'contentType',
      'directory',
      'lastModifiedAt',
      'name',
      'sizeInBytes',
      'type',
    ]);
    assert.equal(file.type, 'File');
    const content = await server.request(
      'GET',
      `${endpoint}/files/${encodeURIComponent('report.txt')}/content?api-version=2024-10-02-preview&identifier=${id}`,
    );
    assert.equal(content.text, 'r');
  });

  it('Semantic Kernel .NET, old (python/execute, python/downloadFile)', async () => {
    const id = 'sk-dotnet-old';
    const run = await post(
      `python/execute?${V1}&identifier=${id}`,
      '{"properties":{"identifier":"sk-dotnet-old","codeInputType":"inline","executionType":"synchronous","pythonCode":"print(\\"ok\\")\\nopen(\\"/mnt/data/out.txt\\", \\"w\\").write(\\"done\\")"}}',
    );
    assert.equal(run.json.status, 'Success');
    assert.equal(run.json.stdout, 'ok\n');
    assert.equal(run.json.result, 4);
    const download = await server.request(
      'GET',
      `${endpoint}/python/downloadFile?${V1}&identifier=${id}&filename=out.txt`,
    );
    assert.equal(download.text, 'done');
  });

  it('LlamaIndex TS AzureDynamicSessionTool (python/execute, identifier only in the body, images at the top level)', async () => {
    const run = await post(
      `python/execute?${V1}`,
      JSON.stringify({
        properties: {
          identifier: 'llamaindex-ts',
          codeInputType: 'inline',
          executionType: 'synchronous',
          pythonCode: PLOT,
        },
      }),
    );
    assert.equal(run.status, 200, run.text);
    assert.equal(run.json.result.type, 'image');
    assert.equal(run.json.result.format, 'png');
    assert.ok(run.json.result.base64_data);
  });

  it('LlamaIndex Python AzureCodeInterpreterToolSpec (v1, /mnt/data upload, result with format)', async () => {
    const id = 'llamaindex-py';
    await server.request('POST', `${endpoint}/files/upload?${V1}&identifier=${id}`, {
      raw: multipart('/mnt/data/in.txt', '7'),
    });
    const run = await post(
      `code/execute?${V1}&identifier=${id}`,
      '{"properties": {"codeInputType": "inline", "executionType": "synchronous", "code": "int(open(\\"/mnt/data/in.txt\\").read()) * 6"}}',
    );
    assert.equal(run.json.properties.result, 42);
    const content = await server.request('GET', `${endpoint}/files/content/in.txt?${V1}&identifier=${id}`);
    assert.equal(content.text, '7');
  });

  it('AutoGen ACADynamicSessionsCodeExecutor (setup code, Success/Failure in properties.status)', async () => {
    const id = 'autogen-exec';
    const setup = await post(
      `code/execute?${V1}&identifier=${id}`,
      JSON.stringify({
        properties: {
          codeInputType: 'inline',
          executionType: 'synchronous',
          code: "import os\nos.chdir('/mnt/data')\nimport pkg_resources\n[d.project_name for d in pkg_resources.working_set][:3]",
        },
      }),
    );
    assert.match(setup.json.properties.status, /Success/);
    const failure = await post(
      `code/execute?${V1}&identifier=${id}`,
      '{"properties": {"codeInputType": "inline", "executionType": "synchronous", "code": "raise ValueError(\\"bad\\")"}}',
    );
    assert.match(failure.json.properties.status, /Failure/);
    assert.match(failure.json.properties.stderr, /ValueError: bad/);
    const cwd = await post(
      `code/execute?${V1}&identifier=${id}`,
      '{"properties": {"codeInputType": "inline", "executionType": "synchronous", "code": "import os\\nos.getcwd()"}}',
    );
    assert.equal(cwd.json.properties.result, '/mnt/data');
  });

  it('az containerapp session code-interpreter execute (properties-wrapped body on /executions)', async () => {
    const run = await post(
      `executions?api-version=2025-02-02-preview&identifier=az-cli`,
      '{"properties": {"identifier": "az-cli", "codeInputType": "inline", "executionType": "synchronous", "timeoutInSeconds": 60, "code": "print(\\"Hello\\")"}}',
    );
    assert.equal(run.json.status, 'Succeeded');
    assert.equal(run.json.result.stdout, 'Hello\n');
  });

  it('endpoints with a trailing slash, as some clients build them', async () => {
    const run = await post(
      `code/execute/?${V1}&identifier=slash`,
      '{"properties": {"codeInputType": "inline", "executionType": "synchronous", "code": "1"}}',
    );
    assert.equal(run.json.properties.result, 1);
  });

  it('@llamaindex/azure AzureDynamicSessionTool itself (npm): runs code, uploads, lists and downloads files', async (t) => {
    // The tool logs every payload to the console; the test output stays readable without it.
    t.mock.method(console, 'log', () => undefined);
    const tool = new AzureDynamicSessionTool({
      poolManagementEndpoint: `${server.url}${endpoint}/`,
      sessionId: 'llamaindex-npm',
      azureADTokenProvider: () => Promise.resolve(ADMIN_KEY),
    });
    const run = (await tool.call({ code: 'x = 6 * 7\nprint(x)' })) as {
      stdout: string;
      stderr: string;
      result: unknown;
    };
    assert.equal(run.stdout, '42\n');
    assert.equal(run.stderr, '');
    const value = (await tool.call({ code: 'x' })) as { result: unknown };
    assert.equal(value.result, 42);
    const uploaded = await tool.uploadFile({
      data: new Blob(['hello from llamaindex']),
      remoteFilename: 'greeting.txt',
    });
    assert.equal((uploaded as { filename: string }).filename, 'greeting.txt');
    const files = (await tool.listFiles()) as { filename: string; size: number }[];
    assert.deepEqual(
      files.map((f) => [f.filename, f.size]),
      [['greeting.txt', 21]],
    );
    const stream = (await tool.downloadFile({
      remoteFilename: 'greeting.txt',
    })) as ReadableStream<Uint8Array>;
    assert.equal(await new Response(stream).text(), 'hello from llamaindex');
  });
});
