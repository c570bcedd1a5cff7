/**
 * A cluster of three nodes on loopback, each `sandpool serve` as a child process with its own home,
 * runtime root and id range, sharing one real PostgreSQL server and keyring: any node answers any
 * identifier (a streamed run and a background process too) and any E2B sandbox through E2B's own
 * SDK, concurrent first requests make one
 * session, the warm set is spread and the max holds across nodes, a drained node places nothing new,
 * a killed node's sessions end `hostLost` (and it keeps only what the store says is live when it
 * comes back), leadership moves when the leader dies, and a database restart loses and duplicates
 * nothing.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';

import { Sandbox as CodeSandbox } from '@e2b/code-interpreter';

import {
  ADMIN_KEY,
  DATA,
  MGMT,
  SUBSCRIPTION,
  armPath,
  interpreterPool,
  poolPath,
  removeServerState,
  testConfig,
  testServerEnv,
  until,
  withoutNodeLabel,
} from '../server-harness.js';
import { call, sandboxesOnHost, startChild, type Child } from '../child-server.js';
import { postgresSkipReason, startPostgres, type PostgresServer } from '../postgres-server.js';
import { buildAppImage, startRegistry, type TestRegistry } from '../registry.js';
import { assertWebSocketEchoes } from '../websocket-echo.js';
import { skipReason } from './harness.js';

const LEASE_SECONDS = 3;
const POOL = 'shared';

interface Node {
  name: string;
  env: Record<string, string>;
  child: Child;
}

const metricsOf = async (node: Node) =>
  (await fetch(`${node.child.url}/metrics`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } })).text();

const run = (node: Node, identifier: string, code: string) =>
  call(node.child, 'POST', `${poolPath(POOL)}/executions?${DATA}&identifier=${identifier}`, { code });

describe('a cluster of three nodes on one PostgreSQL', { skip: skipReason ?? postgresSkipReason }, () => {
  let database: PostgresServer;
  let registry: TestRegistry;
  const undos: (() => void)[] = [];
  const processes: ChildProcess[] = [];
  const keys = mkdtempSync('/var/tmp/sandpool-test-cluster-keys-');
  const nodes = new Map<string, Node>();
  const node = (name: string) => nodes.get(name)!;

  async function start(name: string, env: Record<string, string>): Promise<Node> {
    const child = await startChild(env);
    processes.push(child.process);
    const started = { name, env, child };
    nodes.set(name, started);
    return started;
  }

  async function kill(name: string): Promise<void> {
    const { child } = node(name);
    child.process.kill('SIGKILL');
    await new Promise((resolve) => child.process.once('exit', resolve));
  }

  /** Nodes as one node lists them, by name. */
  async function listed(via: Node) {
    const answer = await call(via.child, 'GET', '/sandpool/nodes');
    return new Map(
      (
        answer.json.value as {
          name: string;
          live: boolean;
          drained: boolean;
          leader?: boolean;
          load: { sessions: number; ready: number };
        }[]
      ).map((entry) => [entry.name, entry]),
    );
  }

  before(async () => {
    // Their cleanups run in this suite's after(), not at the end of this hook.
    const cleanup = (undo: () => void) => undos.push(undo);
    registry = await startRegistry({ cleanup });
    await registry.push(await buildAppImage(cleanup), 'team/app:1');
    database = startPostgres();
    const store = await database.createDatabase('sandpool_cluster');
    for (const name of ['node-a', 'node-b', 'node-c']) {
      const home = mkdtempSync(`/var/tmp/sandpool-test-${name}-`);
      chmodSync(home, 0o711);
      // One at a time: the first makes the shared keyring and the store's forwarding key.
      await start(
        name,
        testServerEnv(`cluster-${name}`, home, {
          SANDPOOL_STORE: store,
          SANDPOOL_STORE_KEYS: `${keys}/store.keys`,
          SANDPOOL_NODE_NAME: name,
          SANDPOOL_NODE_LEASE_SECONDS: String(LEASE_SECONDS),
          SANDPOOL_INSECURE_REGISTRIES: JSON.stringify([registry.host]),
          SANDPOOL_DEFAULT_SUBSCRIPTION: SUBSCRIPTION,
        }),
      );
    }
    const created = await call(
      node('node-a').child,
      'PUT',
      `${armPath(POOL)}?${MGMT}`,
      interpreterPool({ max: 6, ready: 3 }),
    );
    assert.equal(created.status, 201, JSON.stringify(created.json));
    await until('the warm set spread over the three nodes', async () => {
      const seen = await listed(node('node-a'));
      return [...seen.values()].every((entry) => entry.load.ready === 1);
    });
  });

  after(async () => {
    for (const child of processes) child.kill('SIGKILL');
    for (const entry of nodes.values()) await removeServerState(testConfig(entry.env));
    database.remove();
    for (const undo of undos) undo();
    rmSync(keys, { recursive: true, force: true });
  });

  it('answers any identifier through any node: Python state and files follow the session', async () => {
    const first = await run(node('node-a'), 'student', 'total = 40');
    assert.equal(first.json.status, 'Succeeded', JSON.stringify(first.json));
    const session = first.headers.get('x-ms-session-guid');
    const throughB = await run(node('node-b'), 'student', 'total = total + 1\ntotal');
    const throughC = await run(node('node-c'), 'student', 'total + 1');
    assert.equal(throughB.json.result.executionResult, 41);
    assert.equal(throughC.json.result.executionResult, 42);
    assert.equal(throughB.headers.get('x-ms-session-guid'), session);
    assert.equal(throughC.headers.get('x-ms-session-guid'), session);
    const holder = first.headers.get('x-sandpool-node');
    for (const name of ['node-a', 'node-b', 'node-c']) {
      const listed = await call(node(name).child, 'GET', `${poolPath(POOL)}/listSessions?${DATA}`);
      const entry = (listed.json.sessions as { identifier: string; node: string }[]).find(
        (s) => s.identifier === 'student',
      );
      assert.equal(entry?.node, holder, `${name} lists every node's sessions`);
    }

    const form = new FormData();
    form.append('file', new Blob(['uploaded through a\n']), 'note.txt');
    const uploaded = await fetch(
      `${node('node-a').child.url}${poolPath(POOL)}/files?${DATA}&identifier=student`,
      {
        method: 'POST',
        headers: { authorization: `Bearer ${ADMIN_KEY}` },
        body: form,
      },
    );
    assert.equal(uploaded.status, 200, await uploaded.clone().text());
    const read = await fetch(
      `${node('node-c').child.url}${poolPath(POOL)}/files/note.txt/content?${DATA}&identifier=student`,
      { headers: { authorization: `Bearer ${ADMIN_KEY}` } },
    );
    assert.equal(read.status, 200);
    assert.equal(await read.text(), 'uploaded through a\n');

    // A streamed run through a node that does not hold the session: its output arrives while it runs
    // (it waits for a file the test uploads once `ready` has come through), then its result.
    const [through, other] = ['node-a', 'node-b', 'node-c'].filter((name) => name !== holder);
    const streamed = await fetch(
      `${node(through!).child.url}${poolPath(POOL)}/executions?${DATA}&identifier=student`,
      {
        method: 'POST',
        headers: {
          authorization: `Bearer ${ADMIN_KEY}`,
          'content-type': 'application/json',
          accept: 'text/event-stream',
        },
        body: JSON.stringify({
          code: "import os, time\nprint('ready', flush=True)\nwhile not os.path.exists('go'): time.sleep(0.02)\n'went'",
        }),
      },
    );
    assert.equal(streamed.headers.get('x-sandpool-node'), holder);
    const events = streamed.body!.pipeThrough(new TextDecoderStream()).getReader();
    let seen = '';
    while (!seen.includes('"text":"ready\\n"')) seen += (await events.read()).value ?? '';
    const go = new FormData();
    go.append('file', new Blob(['']), 'go');
    await fetch(`${node(other!).child.url}${poolPath(POOL)}/files?${DATA}&identifier=student`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_KEY}` },
      body: go,
    });
    for (let chunk = await events.read(); !chunk.done; chunk = await events.read()) seen += chunk.value;
    assert.match(seen, /event: result\ndata: .*"executionResult":"went"/);

    // A background process started through one node is read and killed through another.
    const started = await call(
      node(through!).child,
      'POST',
      `${poolPath(POOL)}/processes?${DATA}&identifier=student`,
      {
        command: 'echo from the background; sleep 60',
      },
    );
    assert.equal(started.status, 201, JSON.stringify(started.json));
    const pid = started.json.pid as number;
    await until('the process’s output through the other node', async () => {
      const output = await call(
        node(other!).child,
        'GET',
        `${poolPath(POOL)}/processes/${pid}/output?${DATA}&identifier=student`,
      );
      return output.json.stdout?.text === 'from the background\n';
    });
    const killed = await call(
      node(other!).child,
      'POST',
      `${poolPath(POOL)}/processes/${pid}/kill?${DATA}&identifier=student&signal=KILL`,
    );
    assert.equal(killed.status, 200);
  });

  it('serves an E2B sandbox made through one node from every node, with E2B’s own SDK', async () => {
    // A template is a pool of the E2B resource group; this one keeps no warm set, so the nodes' loads stay as they were.
    const template = 'clustertemplate';
    const made = await call(
      node('node-a').child,
      'PUT',
      `${armPath(template, 'e2b')}?${MGMT}`,
      interpreterPool({ max: 2, ready: 0 }),
    );
    assert.equal(made.status, 201, JSON.stringify(made.json));
    const key = await call(node('node-a').child, 'POST', '/sandpool/apiKeys', {
      name: 'e2b in a cluster',
      roles: ['SessionExecutor', 'Reader'],
    });
    assert.equal(key.status, 201, JSON.stringify(key.json));
    const through = (via: Node) => ({
      apiKey: key.json.e2bKey as string,
      apiUrl: via.child.url,
      sandboxUrl: via.child.url,
      domain: 'sandpool.test',
    });
    const sandbox = await CodeSandbox.create(template, through(node('node-a')));
    await sandbox.runCode('seen = ["node-a"]');
    for (const name of ['node-b', 'node-c']) {
      const there = await CodeSandbox.connect(sandbox.sandboxId, through(node(name)));
      const ran = await there.runCode(`seen.append(${JSON.stringify(name)})\nseen`);
      assert.equal(ran.error, undefined, JSON.stringify(ran.error));
      await there.files.write(`/tmp/${name}.txt`, name);
      assert.equal((await there.commands.run(`cat /tmp/${name}.txt`)).stdout, name);
    }
    const final = await CodeSandbox.connect(sandbox.sandboxId, through(node('node-a')));
    assert.equal((await final.runCode('seen')).text, "['node-a', 'node-b', 'node-c']");
    const listed = await CodeSandbox.list({ ...through(node('node-c')), query: { template } }).nextItems();
    assert.deepEqual(
      listed.map((entry) => entry.sandboxId),
      [sandbox.sandboxId],
    );
    assert.equal(await CodeSandbox.kill(sandbox.sandboxId, through(node('node-b'))), true);
    assert.equal(await final.isRunning(), false);
  });

  it('tunnels a WebSocket to a custom container through a node that does not hold its session', async () => {
    const echo = {
      location: 'local',
      properties: {
        containerType: 'CustomContainer',
        scaleConfiguration: { maxConcurrentSessions: 2, readySessionInstances: 1 },
        customContainerTemplate: {
          containers: [
            {
              name: 'echo',
              image: `${registry.host}/team/app:1`,
              command: ['/bin/busybox'],
              args: ['nc', '-ll', '-p', '8080', '-e', '/app/echo.sh'],
              resources: { cpu: 0.25, memory: '0.5Gi' },
            },
          ],
          ingress: { targetPort: 8080 },
        },
      },
    };
    const created = await call(node('node-a').child, 'PUT', `${armPath('echo')}?${MGMT}`, echo);
    assert.equal(created.status, 201, JSON.stringify(created.json));
    await until(
      'the echo pool',
      async () =>
        (await call(node('node-a').child, 'GET', `${armPath('echo')}?${MGMT}`)).json.properties
          ?.provisioningState === 'Succeeded',
      60_000,
    );
    try {
      const roundTrip = (name: string) =>
        assertWebSocketEchoes(node(name).child.url, `${poolPath('echo')}/ws?identifier=ws-user`);
      await roundTrip('node-a');
      const listed = await call(node('node-a').child, 'GET', `${poolPath('echo')}/listSessions?${DATA}`);
      const holder = (listed.json.sessions as { identifier: string; node: string }[]).find(
        (entry) => entry.identifier === 'ws-user',
      )!.node;
      await roundTrip(['node-a', 'node-b', 'node-c'].find((name) => name !== holder)!);
    } finally {
      // The pool's sandboxes would count in the node loads the later tests read.
      const deleted = await call(node('node-a').child, 'DELETE', `${armPath('echo')}?${MGMT}`);
      assert.ok(deleted.status < 300, JSON.stringify(deleted.json));
      await until(
        'the echo pool gone',
        async () => (await call(node('node-a').child, 'GET', `${armPath('echo')}?${MGMT}`)).status === 404,
      );
    }
  });

  it('refuses a forwarded principal a node did not sign, or signed for another request', async () => {
    const forged = await fetch(
      `${node('node-b').child.url}${poolPath(POOL)}/executions?${DATA}&identifier=student`,
      {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'x-sandpool-forwarded-principal': `${Buffer.from(JSON.stringify({ principal: { id: 'mallory', grants: [{ role: 'SessionExecutor', scope: '*' }] }, expiresAt: Date.now() + 10_000 })).toString('base64url')}.AAAA`,
        },
        body: JSON.stringify({ code: '1' }),
      },
    );
    assert.equal(forged.status, 401);
    assert.equal(((await forged.json()) as { error: { code: string } }).error.code, 'AuthenticationFailed');
  });

  it('authorizes a request for another node’s session where it lands, before anything is claimed or forwarded', async () => {
    const held = await run(node('node-a'), 'student', 'total');
    assert.equal(held.json.result.executionResult, 41);
    const holder = held.headers.get('x-sandpool-node')!;
    const via = node(['node-a', 'node-b', 'node-c'].find((name) => name !== holder)!);
    const newKey = async (roles: string[]) => {
      const created = await call(node('node-a').child, 'POST', '/sandpool/apiKeys', {
        name: 'tenant',
        roles,
      });
      assert.equal(created.status, 201, JSON.stringify(created.json));
      return created.json as { id: string; key: string };
    };
    const otherPool = await newKey([`SessionExecutor:${armPath('elsewhere')}`]);
    const otherGroup = await newKey([`SessionExecutor:/subscriptions/${SUBSCRIPTION}/resourceGroups/other`]);
    const reader = await newKey(['Reader']);
    const revoked = await newKey(['SessionExecutor']);
    assert.equal((await call(node('node-a').child, 'DELETE', `/sandpool/apiKeys/${revoked.id}`)).status, 200);
    const attempt = (credential: string | null) =>
      fetch(`${via.child.url}${poolPath(POOL)}/executions?${DATA}&identifier=student`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          ...(credential !== null && { authorization: `Bearer ${credential}` }),
        },
        body: JSON.stringify({ code: 'total = 0' }),
      });
    assert.equal((await attempt(otherPool.key)).status, 403, 'a grant on another pool');
    assert.equal((await attempt(otherGroup.key)).status, 403, 'a grant on another resource group');
    assert.equal((await attempt(reader.key)).status, 403, 'a Reader runs no code');
    assert.equal((await attempt(null)).status, 401, 'no credential');
    // A revocation made through one node reaches the others within their key refresh (5 s).
    await new Promise((resolve) => setTimeout(resolve, 5_500));
    assert.equal((await attempt(revoked.key)).status, 401, 'a key revoked through another node');
    assert.equal((await run(via, 'student', 'total')).json.result.executionResult, 41, 'nothing ran');
  });

  it('makes exactly one session of concurrent first requests through different nodes', async () => {
    const answers = await Promise.all(
      ['node-a', 'node-b', 'node-c', 'node-a', 'node-b', 'node-c'].map((name) =>
        run(node(name), 'racer', '1 + 1'),
      ),
    );
    for (const answer of answers) assert.equal(answer.json.status, 'Succeeded', JSON.stringify(answer.json));
    assert.equal(new Set(answers.map((answer) => answer.headers.get('x-ms-session-guid'))).size, 1);
    const created = answers.filter((answer) =>
      answer.headers.get('x-sandpool-session')?.startsWith('created'),
    );
    assert.equal(created.length, 1);
  });

  it('holds the pool’s max across nodes and refills the warm set where there is room', async () => {
    // student and racer hold two of the six; four more fit, wherever they land.
    const more = await Promise.all(
      ['m1', 'm2', 'm3', 'm4'].map((identifier, i) =>
        run(node(['node-a', 'node-b', 'node-c'][i % 3]!), identifier, '0'),
      ),
    );
    for (const answer of more) assert.equal(answer.json.status, 'Succeeded', JSON.stringify(answer.json));
    for (const name of ['node-a', 'node-b', 'node-c']) {
      const refused = await run(node(name), `over-${name}`, '0');
      assert.equal(refused.status, 429, JSON.stringify(refused.json));
      assert.equal(refused.json.error.code, 'SessionPoolFull');
    }
    // Every node's metrics count the whole cluster, as of its last look at the store.
    for (const name of ['node-a', 'node-b', 'node-c']) {
      await until(`${name}’s metrics to count the cluster’s six sessions and three nodes`, async () => {
        const text = withoutNodeLabel(await metricsOf(node(name)));
        return (
          new RegExp(`^sandpool_cluster_sessions\\{pool="[^"]+/${POOL}",state="allocated"\\} 6$`, 'm').test(
            text,
          ) && /^sandpool_cluster_nodes\{state="serving"\} 3$/m.test(text)
        );
      });
    }
    for (const identifier of ['m1', 'm2', 'm3', 'm4', 'student', 'racer']) {
      const stopped = await call(
        node('node-b').child,
        'DELETE',
        `${poolPath(POOL)}/session?${DATA}&identifier=${identifier}`,
      );
      assert.ok(stopped.status < 300, JSON.stringify(stopped.json));
    }
    await until('the warm set refilled on every node', async () =>
      [...(await listed(node('node-c'))).values()].every((entry) => entry.load.ready >= 1),
    );
  });

  it('drains a node: new sessions go elsewhere, its own run to their end, then it is drained', async () => {
    // A session held by node-c: the first request through c takes c's own ready sandbox.
    const kept = await run(node('node-c'), 'on-c', 'kept = "still here"');
    assert.equal(kept.json.status, 'Succeeded');
    assert.equal(kept.headers.get('x-sandpool-node'), 'node-c');
    const drained = await call(node('node-c').child, 'POST', '/sandpool/nodes/node-c/drain');
    assert.equal(drained.status, 200, JSON.stringify(drained.json));
    assert.equal(drained.json.drained, false, 'one session still runs on it');

    const elsewhere = await run(node('node-c'), 'after-drain', '"placed"');
    assert.equal(elsewhere.json.status, 'Succeeded', JSON.stringify(elsewhere.json));
    assert.notEqual(elsewhere.headers.get('x-sandpool-node'), 'node-c');
    const cNow = (await listed(node('node-c'))).get('node-c')!;
    assert.equal(cNow.load.sessions, 1, 'node-c took no new session');
    assert.equal(cNow.load.ready, 0, 'its ready sandboxes were retired');
    assert.equal((await run(node('node-a'), 'on-c', 'kept')).json.result.executionResult, 'still here');

    await call(node('node-a').child, 'DELETE', `${poolPath(POOL)}/session?${DATA}&identifier=on-c`);
    await until('node-c drained', async () => (await listed(node('node-c'))).get('node-c')!.drained);
    await call(node('node-a').child, 'DELETE', `${poolPath(POOL)}/session?${DATA}&identifier=after-drain`);
  });

  it('ends a killed node’s sessions hostLost, moves leadership, refills elsewhere, and the node keeps only what is live when back', async () => {
    // node-a started first and leads; a session on it, one on node-b.
    await until('node-a to lead', async () => (await listed(node('node-a'))).get('node-a')!.leader === true);
    // Each node answers for itself exactly.
    const readyOn = async (name: string) => (await listed(node(name))).get(name)!.load.ready;
    await until(
      'a ready sandbox on node-a and on node-b',
      async () => (await readyOn('node-a')) > 0 && (await readyOn('node-b')) > 0,
    );
    const onA = await run(node('node-a'), 'on-a', 'x = 1');
    const onB = await run(node('node-b'), 'on-b', 'y = 2');
    assert.equal(onA.json.status, 'Succeeded');
    assert.equal(onB.json.status, 'Succeeded');
    assert.deepEqual(
      [onA.headers.get('x-sandpool-node'), onB.headers.get('x-sandpool-node')],
      ['node-a', 'node-b'],
      'each took its own ready sandbox',
    );
    const lostSandbox = onA.headers.get('x-ms-session-guid')!;
    await kill('node-a');

    const again = await until(
      'node-a’s session to end hostLost',
      async () => {
        const answer = await run(node('node-b'), 'on-a', 'x');
        return answer.headers.get('x-sandpool-previous-session-ended') === 'hostLost' ? answer : undefined;
      },
      (LEASE_SECONDS + 20) * 1000,
    );
    assert.notEqual(again.headers.get('x-ms-session-guid'), lostSandbox);
    assert.equal(again.json.status, 'Failed', 'a new session: x is not defined there');
    assert.equal(
      (await run(node('node-b'), 'on-b', 'y')).json.result.executionResult,
      2,
      'other sessions untouched',
    );

    // A pool update goes through while the old leader is dead.
    const updated = await call(
      node('node-b').child,
      'PUT',
      `${armPath(POOL)}?${MGMT}`,
      interpreterPool({ max: 6, ready: 2 }),
    );
    assert.ok(updated.status < 300, JSON.stringify(updated.json));
    await until(
      'the warm set refilled on node-b',
      async () => (await listed(node('node-b'))).get('node-b')!.load.ready >= 1,
    );

    await start('node-a', node('node-a').env);
    const onHost = await sandboxesOnHost(testConfig(node('node-a').env));
    assert.ok(!onHost.containers!.includes(lostSandbox), 'the sandbox the cluster ended is gone from node-a');
    assert.equal((await run(node('node-a'), 'on-b', 'y')).json.result.executionResult, 2);
  });

  it('answers 503 StoreBusy while PostgreSQL restarts, and neither loses nor duplicates a session', async () => {
    const before = await run(node('node-b'), 'steady', 'z = 7');
    assert.equal(before.json.status, 'Succeeded');
    database.stop();
    try {
      const refused = await run(node('node-a'), 'newcomer', '1');
      assert.equal(refused.status, 503, JSON.stringify(refused.json));
      assert.equal(refused.json.error.code, 'StoreBusy');
      assert.ok(refused.headers.get('retry-after'));
    } finally {
      database.start();
    }
    const after = await until(
      'the cluster to serve again',
      async () => {
        const answer = await run(node('node-c'), 'steady', 'z');
        return answer.status === 200 ? answer : undefined;
      },
      30_000,
    );
    assert.equal(after.json.result.executionResult, 7);
    assert.equal(after.headers.get('x-ms-session-guid'), before.headers.get('x-ms-session-guid'));
    const newcomer = await until('a new identifier to get a session', async () => {
      const answer = await run(node('node-a'), 'newcomer', '1');
      return answer.status === 200 ? answer : undefined;
    });
    assert.equal(newcomer.json.status, 'Succeeded');
  });
});
