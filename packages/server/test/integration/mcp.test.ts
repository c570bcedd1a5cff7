/**
 * Both MCP servers with real sandboxes, driven by the official MCP SDK's client over Streamable HTTP.
 * Sandpool's: the tools a caller's role allows, Python state kept across calls, figures as images,
 * files both ways, shell commands, ending a session, and refusal for no credential, a revoked key,
 * another pool's or resource group's grant, a Reader's execution attempt and another caller's MCP
 * session. Azure's platform one: enabled as Azure's tutorial spells it, its key fetched and rotated
 * (the old one refused at once), the tutorial's bare requests, and environments that are sessions.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';

import {
  ADMIN_KEY,
  DATA,
  MGMT,
  RESOURCE_GROUP,
  SUBSCRIPTION,
  armPath,
  createPool,
  interpreterPool,
  newKey,
  poolPath,
  startTestServer,
  until,
  type TestServer,
} from '../server-harness.js';
import { skipReason } from './harness.js';

const mcpUrl = (server: TestServer, pool: string, resourceGroup = RESOURCE_GROUP) =>
  new URL(`${server.url}${poolPath(pool, resourceGroup)}/mcp`);

async function connect(server: TestServer, key: string, pool = 'agents'): Promise<Client> {
  const client = new Client({ name: 'sandpool-test', version: '1.0.0' });
  await client.connect(
    new StreamableHTTPClientTransport(mcpUrl(server, pool), {
      requestInit: { headers: { authorization: `Bearer ${key}` } },
    }),
  );
  return client;
}

const textOf = (result: CallToolResult) =>
  result.content
    .filter((part) => part.type === 'text')
    .map((part) => part.text)
    .join('\n');

describe('the MCP server, through the official SDK client', { skip: skipReason }, async () => {
  const server: TestServer = await startTestServer('mcp');
  assert.equal(await createPool(server, 'agents', interpreterPool({ max: 6, ready: 2 })), 'Succeeded');
  assert.equal(
    await createPool(server, 'shells', interpreterPool({ max: 2, ready: 0, containerType: 'Shell' })),
    'Succeeded',
  );

  it('lists its tools and keeps Python state across calls in the MCP session’s own sandbox', async () => {
    const client = await connect(server, ADMIN_KEY);
    const { tools } = await client.listTools();
    assert.deepEqual(tools.map((tool) => tool.name).sort(), [
      'delete_file',
      'end_session',
      'kill_process',
      'list_files',
      'list_processes',
      'list_sessions',
      'read_file',
      'read_process_output',
      'run_python',
      'run_shell_command',
      'start_process',
      'upload_file',
      'write_process_stdin',
    ]);
    const runPython = tools.find((tool) => tool.name === 'run_python')!;
    assert.deepEqual(runPython.inputSchema.required, ['code']);

    const first = (await client.callTool({
      name: 'run_python',
      arguments: { code: 'x = 20\nprint("set")' },
    })) as CallToolResult;
    assert.equal(first.isError, false);
    assert.match(textOf(first), /stdout:\nset/);
    const second = (await client.callTool({
      name: 'run_python',
      arguments: { code: 'x * 2 + 2' },
    })) as CallToolResult;
    assert.match(textOf(second), /result: 42/);
    assert.equal((second.structuredContent as { status: string }).status, 'Succeeded');

    const failed = (await client.callTool({
      name: 'run_python',
      arguments: { code: '1 / 0' },
    })) as CallToolResult;
    assert.equal(failed.isError, true);
    assert.match(textOf(failed), /ZeroDivisionError/);

    const figure = (await client.callTool({
      name: 'run_python',
      arguments: { code: 'import matplotlib.pyplot as plt\nplt.plot([1, 2, 3])\nplt.show()' },
    })) as CallToolResult;
    const image = figure.content.find((part) => part.type === 'image');
    assert.equal(image?.mimeType, 'image/png');
    assert.equal(Buffer.from(image.data, 'base64').subarray(1, 4).toString(), 'PNG');
    await client.close();
  });

  it('moves files both ways, runs shell commands on them, and ends a named session', async () => {
    const client = await connect(server, ADMIN_KEY);
    const call = async (name: string, args: Record<string, unknown>) =>
      (await client.callTool({ name, arguments: args })) as CallToolResult;
    assert.equal(
      (await call('upload_file', { path: 'data/in.csv', content: 'a,b\n1,2\n', identifier: 'mcp-files' }))
        .isError,
      false,
    );
    const listed = await call('list_files', { path: 'data', identifier: 'mcp-files' });
    assert.match(textOf(listed), /data\/in\.csv/);
    const counted = await call('run_shell_command', {
      command: 'wc -l < data/in.csv',
      identifier: 'mcp-files',
    });
    assert.match(textOf(counted), /stdout:\n2/);
    assert.match(textOf(counted), /exit code: 0/);
    await call('run_python', {
      code: 'open("out.bin", "wb").write(bytes(range(256)))',
      identifier: 'mcp-files',
    });
    const binary = await call('read_file', { path: '/mnt/data/out.bin', identifier: 'mcp-files' });
    const structured = binary.structuredContent as { encoding: string; content: string };
    assert.equal(structured.encoding, 'base64');
    assert.deepEqual([...Buffer.from(structured.content, 'base64')], [...Array(256).keys()]);
    assert.match(
      textOf(await call('read_file', { path: 'data/in.csv', identifier: 'mcp-files' })),
      /^a,b\n1,2\n$/,
    );
    assert.equal(
      (await call('delete_file', { path: 'data/in.csv', identifier: 'mcp-files' })).isError,
      false,
    );
    const gone = await call('read_file', { path: 'data/in.csv', identifier: 'mcp-files' });
    assert.equal(gone.isError, true);
    assert.match(textOf(gone), /FileNotFound/);

    // The same session through the HTTP API: the file the tool wrote is there.
    const viaHttp = await server.request('GET', `${poolPath('agents')}/files?${DATA}&identifier=mcp-files`);
    assert.ok(
      (viaHttp.json.value as { name: string }[]).some((file) => file.name === 'out.bin'),
      viaHttp.text,
    );
    assert.match(textOf(await call('end_session', { identifier: 'mcp-files' })), /ended mcp-files/);
    const after = await server.request('GET', `${poolPath('agents')}/session?${DATA}&identifier=mcp-files`);
    assert.equal(after.status, 404);

    // Arguments that break the schema are refused before anything runs.
    await assert.rejects(call('run_python', { code: 1 }), /code/);
    await assert.rejects(call('no_such_tool', {}), /no tool named/);
    await client.close();
  });

  it('offers a Shell pool its shell, file and process tools, not Python', async () => {
    const client = await connect(server, ADMIN_KEY, 'shells');
    const names = (await client.listTools()).tools.map((tool) => tool.name);
    assert.ok(!names.includes('run_python'));
    const echoed = (await client.callTool({
      name: 'run_shell_command',
      arguments: { command: 'echo $((6 * 7))' },
    })) as CallToolResult;
    assert.match(textOf(echoed), /stdout:\n42/);

    // A background process in the MCP session's own sandbox: started, fed, read on from an offset, killed.
    const call = async (name: string, args: Record<string, unknown>) =>
      (await client.callTool({ name, arguments: args })) as CallToolResult & {
        structuredContent: Record<string, any>;
      };
    const started = await call('start_process', { command: 'cat' });
    const pid = started.structuredContent.pid as number;
    assert.match(textOf(started), new RegExp(`process ${String(pid)} \\(cat\\): running`));
    await call('write_process_stdin', { pid, text: 'first\n' });
    await call('write_process_stdin', { pid, text: 'second\n', close: true });
    let read = await call('read_process_output', { pid });
    while (read.structuredContent.process.status === 'Running')
      read = await call('read_process_output', { pid });
    assert.equal(read.structuredContent.stdout.text, 'first\nsecond\n');
    const rest = await call('read_process_output', { pid, stdoutOffset: 6 });
    assert.match(textOf(rest), /stdout:\nsecond\n/);
    assert.match(textOf(rest), /next offsets: stdoutOffset 13/);
    const sleeper = await call('start_process', { command: 'sleep 60' });
    const killed = await call('kill_process', { pid: sleeper.structuredContent.pid, signal: 'KILL' });
    assert.equal(killed.isError, false);
    const listed = await call('list_processes', {});
    assert.deepEqual(
      (listed.structuredContent.value as { pid: number }[]).map((p) => p.pid),
      [pid, sleeper.structuredContent.pid],
    );
    const missing = await call('read_process_output', { pid: 4_000_000 });
    assert.equal(missing.isError, true);
    assert.match(textOf(missing), /^ProcessNotFound: /);
    await assert.rejects(call('kill_process', { pid: 'one' }), /pid/);
    await client.close();
  });

  it('shows a Reader no execution tool and lets it call none', async () => {
    const reader = await newKey(server, ['Reader']);
    const client = await connect(server, reader.key);
    assert.deepEqual(
      (await client.listTools()).tools.map((tool) => tool.name),
      ['list_sessions'],
    );
    await assert.rejects(
      client.callTool({ name: 'run_python', arguments: { code: 'print(1)' } }),
      /no tool named/,
    );
    await client.close();
  });

  it('refuses no credential, a revoked key, a grant on another pool or resource group, and another caller’s MCP session', async () => {
    const initialize = (headers: Record<string, string>, pool = 'agents', resourceGroup = RESOURCE_GROUP) =>
      fetch(mcpUrl(server, pool, resourceGroup), {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          ...headers,
        },
        body: JSON.stringify({
          jsonrpc: '2.0',
          id: 1,
          method: 'initialize',
          params: {
            protocolVersion: '2025-03-26',
            capabilities: {},
            clientInfo: { name: 'raw', version: '1' },
          },
        }),
      });
    assert.equal((await initialize({})).status, 401, 'no credential');
    const otherPool = await newKey(server, [`SessionExecutor:${armPath('elsewhere')}`]);
    assert.equal(
      (await initialize({ authorization: `Bearer ${otherPool.key}` })).status,
      403,
      'another pool',
    );
    const otherGroup = await newKey(server, [
      `SessionExecutor:/subscriptions/${SUBSCRIPTION}/resourceGroups/other`,
    ]);
    assert.equal(
      (await initialize({ authorization: `Bearer ${otherGroup.key}` })).status,
      403,
      'another resource group',
    );

    // A key revoked while its MCP session is open ends that session at once, with its own sandbox,
    // and stops the client at its next request.
    const executor = await newKey(server, ['SessionExecutor']);
    const transport = new StreamableHTTPClientTransport(mcpUrl(server, 'agents'), {
      requestInit: { headers: { authorization: `Bearer ${executor.key}` } },
    });
    const client = new Client({ name: 'sandpool-test', version: '1.0.0' });
    await client.connect(transport);
    await client.callTool({ name: 'run_python', arguments: { code: '1' } });
    // Its own sandbox is listed to nobody: its events say when it was allocated and when it ended.
    const ownSandbox = `private mcp ${transport.sessionId!}`;
    const events = async (type: string) =>
      (
        await server.request(
          'GET',
          `${armPath('agents')}/events?${MGMT}&type=${type}&identifier=${encodeURIComponent(ownSandbox)}`,
        )
      ).json.value as unknown[];
    assert.equal((await events('allocated')).length, 1, 'the MCP session works in a sandbox of its own');
    assert.equal((await events('ended')).length, 0);
    assert.equal((await server.request('DELETE', `/sandpool/apiKeys/${executor.id}`)).status, 200);
    await until(
      'the revoked key’s MCP session to end its sandbox',
      async () => (await events('ended')).length === 1,
    );
    await assert.rejects(
      client.callTool({ name: 'run_python', arguments: { code: '2' } }),
      /AuthenticationFailed/,
    );
    await client.close();

    // Another caller presenting a live MCP session's id finds no such session.
    const owner = await newKey(server, ['SessionExecutor']);
    const opened = await initialize({ authorization: `Bearer ${owner.key}` });
    const sessionId = opened.headers.get('mcp-session-id')!;
    assert.ok(sessionId);
    const intruder = await newKey(server, ['SessionExecutor']);
    const borrowed = await fetch(mcpUrl(server, 'agents'), {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        authorization: `Bearer ${intruder.key}`,
        'mcp-session-id': sessionId,
      },
      body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/list' }),
    });
    assert.equal(borrowed.status, 404);
    assert.equal(((await borrowed.json()) as { error: { code: string } }).error.code, 'McpSessionNotFound');
  });
});

describe('Azure’s platform MCP server, wire-compatible', { skip: skipReason }, async () => {
  const server: TestServer = await startTestServer('platform-mcp');
  const PREVIEW = 'api-version=2025-10-02-preview';
  const withMcp = (containerType: 'PythonLTS' | 'Shell') => {
    const body = interpreterPool({ max: 4, ready: 1, containerType });
    // As Azure's tutorial spells it.
    return { ...body, properties: { ...body.properties, mcpServerSettings: { isMCPServerEnabled: true } } };
  };
  assert.equal(await createPool(server, 'copilot', withMcp('PythonLTS')), 'Succeeded');
  assert.equal(await createPool(server, 'plain', interpreterPool({ max: 2, ready: 0 })), 'Succeeded');
  const credentials = async (action: string, pool = 'copilot') =>
    server.request('POST', `${armPath(pool)}/${action}?${PREVIEW}`);
  const rpc = (key: string, body: unknown) =>
    fetch(`${server.url}${poolPath('copilot')}/platformMcp`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-ms-apikey': key },
      body: JSON.stringify(body),
    });

  it('publishes its endpoint and key, and answers the tutorial’s bare requests', async () => {
    const pool = await server.request('GET', `${armPath('copilot')}?${PREVIEW}`);
    const settings = pool.json.properties.mcpServerSettings as Record<string, unknown>;
    assert.equal(settings.isMcpServerEnabled, true);
    assert.equal(settings.mcpServerEndpoint, `${server.url}${poolPath('copilot')}/platformMcp`);
    const fetched = await credentials('fetchMCPServerCredentials');
    assert.equal(fetched.status, 200, fetched.text);
    const key = fetched.json.apiKey as string;
    assert.equal(
      (await credentials('fetchMcpServerCredentials')).json.apiKey,
      key,
      'the same key until rotated',
    );

    const initialized = await rpc(key, { jsonrpc: '2.0', id: '1', method: 'initialize' });
    assert.equal(initialized.status, 200);
    const { result } = (await initialized.json()) as { result: Record<string, any> };
    assert.equal(result.protocolVersion, '2025-03-26');
    assert.equal(result.serverInfo.name, 'Microsoft Container Apps MCP Server');
    assert.deepEqual(result.capabilities.tools, { call: true, list: true });

    const launched = (await (
      await rpc(key, {
        jsonrpc: '2.0',
        id: '2',
        method: 'tools/call',
        params: { name: 'launchShell', arguments: {} },
      })
    ).json()) as { result: { structuredContent: { environmentId: string } } };
    const environmentId = launched.result.structuredContent.environmentId;
    const ran = (await (
      await rpc(key, {
        jsonrpc: '2.0',
        id: '3',
        method: 'tools/call',
        params: {
          name: 'runShellCommandInRemoteEnvironment',
          arguments: { environmentId, shellCommand: 'echo Hello from a shell' },
        },
      })
    ).json()) as { result: { structuredContent: { stdout: string; exitCode: number } } };
    assert.equal(ran.result.structuredContent.stdout, 'Hello from a shell\n');
    assert.equal(ran.result.structuredContent.exitCode, 0);
    // The environment is a session of the pool, as the HTTP API sees it.
    const session = await server.request(
      'GET',
      `${poolPath('copilot')}/session?${DATA}&identifier=${environmentId}`,
    );
    assert.equal(session.status, 200, session.text);
  });

  it('serves the official SDK client: tools, Python state in an environment, argument vectors', async () => {
    const key = (await credentials('fetchMcpServerCredentials')).json.apiKey as string;
    const client = new Client({ name: 'sandpool-test', version: '1.0.0' });
    await client.connect(
      new StreamableHTTPClientTransport(new URL(`${server.url}${poolPath('copilot')}/platformMcp`), {
        requestInit: { headers: { 'x-ms-apikey': key } },
      }),
    );
    assert.deepEqual((await client.listTools()).tools.map((tool) => tool.name).sort(), [
      'launchShell',
      'runPythonCodeInRemoteEnvironment',
      'runShellCommandInRemoteEnvironment',
    ]);
    const launched = (await client.callTool({ name: 'launchShell', arguments: {} })) as CallToolResult;
    const { environmentId } = launched.structuredContent as { environmentId: string };
    const python = (code: string) =>
      client.callTool({
        name: 'runPythonCodeInRemoteEnvironment',
        arguments: { environmentId, pythonCode: code },
      });
    await python('total = 40');
    const second = (await python('print("sum"); total + 2')) as CallToolResult;
    assert.deepEqual(second.structuredContent, { stdout: 'sum\n', stderr: '', result: 42 });
    const words = (await client.callTool({
      name: 'runShellCommandInRemoteEnvironment',
      arguments: { environmentId, execCommandAndArgs: ['printf', '%s|', "it's", 'a b'] },
    })) as CallToolResult;
    assert.equal((words.structuredContent as { stdout: string }).stdout, "it's|a b|");
    await client.close();
  });

  it('refuses a rotated key at once, no key, another pool’s key, a Reader, and a pool without the server', async () => {
    const old = (await credentials('fetchMcpServerCredentials')).json.apiKey as string;
    const rotated = await credentials('rotateMcpServerCredentials');
    assert.equal(rotated.status, 200, rotated.text);
    const fresh = rotated.json.apiKey as string;
    assert.notEqual(fresh, old);
    const ping = { jsonrpc: '2.0', id: 1, method: 'ping' };
    assert.equal((await rpc(old, ping)).status, 401, 'the rotated key');
    assert.equal((await rpc(fresh, ping)).status, 200, 'the new key');
    const bare = await fetch(`${server.url}${poolPath('copilot')}/platformMcp`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(ping),
    });
    assert.equal(bare.status, 401, 'no key');
    const reader = await newKey(server, ['Reader']);
    const asReader = await fetch(`${server.url}${poolPath('copilot')}/platformMcp`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${reader.key}` },
      body: JSON.stringify(ping),
    });
    assert.equal(asReader.status, 403, 'a Reader runs nothing');
    // The key's own routes: a Session Executor, a Contributor of another pool or resource group, a
    // revoked key of the pool's Contributor and Session Executor, no credential.
    const fetchAs = (credential: string | null) =>
      fetch(`${server.url}${armPath('copilot')}/fetchMcpServerCredentials?${PREVIEW}`, {
        method: 'POST',
        headers: credential === null ? {} : { authorization: `Bearer ${credential}` },
      });
    const executor = await newKey(server, [`SessionExecutor:${armPath('copilot')}`]);
    assert.equal((await fetchAs(executor.key)).status, 403, 'a Session Executor may not read the key');
    const otherPool = await newKey(server, [`Contributor:${armPath('plain')}`]);
    assert.equal((await fetchAs(otherPool.key)).status, 403, 'a Contributor of another pool');
    const otherGroup = await newKey(server, [
      `Contributor:/subscriptions/${SUBSCRIPTION}/resourceGroups/other`,
    ]);
    assert.equal((await fetchAs(otherGroup.key)).status, 403, 'a Contributor of another resource group');
    const revoked = await newKey(server, [
      `Contributor:${armPath('copilot')}`,
      `SessionExecutor:${armPath('copilot')}`,
    ]);
    assert.equal(
      (await fetchAs(revoked.key)).status,
      200,
      'who may run code and manage the pool, until revoked',
    );
    assert.equal((await server.request('DELETE', `/sandpool/apiKeys/${revoked.id}`)).status, 200);
    assert.equal((await fetchAs(revoked.key)).status, 401, 'a revoked key');
    assert.equal((await fetchAs(null)).status, 401, 'no credential');
    // The MCP endpoint with a bearer credential of another resource group's executor.
    const groupExecutor = await newKey(server, [
      `SessionExecutor:/subscriptions/${SUBSCRIPTION}/resourceGroups/other`,
    ]);
    const asOtherGroup = await fetch(`${server.url}${poolPath('copilot')}/platformMcp`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${groupExecutor.key}` },
      body: JSON.stringify(ping),
    });
    assert.equal(asOtherGroup.status, 403, 'an executor of another resource group');
    const notEnabled = await credentials('fetchMcpServerCredentials', 'plain');
    assert.equal(notEnabled.status, 400);
    assert.equal(notEnabled.json.error.code, 'InvalidParameter');
    const elsewhere = await fetch(`${server.url}${poolPath('plain')}/platformMcp`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-ms-apikey': fresh },
      body: JSON.stringify(ping),
    });
    assert.equal(elsewhere.status, 401, 'a key answers for its own pool only');
  });
});
