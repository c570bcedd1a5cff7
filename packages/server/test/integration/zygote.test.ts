/**
 * Sandboxes forked from a zygote (SANDPOOL_ZYGOTE), end to end through a real server: what the
 * session sees is the interpreter a runc sandbox has, with the same walls (its own user namespace
 * and host id range, pid 1 of its own namespaces, no capabilities, no_new_privs, the seccomp
 * filter, its own cgroup with the pool's limits), the preload shared, and nothing left behind.
 * The escape battery runs against this path too (security/escape.test.ts).
 */

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { describe, it } from 'node:test';

import { poolId } from '../../src/arm-id.js';
import {
  DATA,
  RESOURCE_GROUP,
  SUBSCRIPTION,
  createPool,
  execute,
  interpreterPool,
  poolPath,
  startTestServer,
  until,
  withoutNodeLabel,
  type TestServer,
} from '../server-harness.js';
import { skipReason } from './harness.js';

const MIB = 1024 ** 2;
/** Connects to the Unix socket named by its first argument and says what the other end answered. */
const CONNECT =
  'import socket, sys\ns = socket.socket(socket.AF_UNIX)\ns.connect(sys.argv[1])\nprint(s.recv(200))';

/**
 * The pid of a zygote's spare's pid 1 below the cgroup parent, if one waits: pid 1 of a nested pid
 * namespace, still in a zygote's memory cgroup.
 */
function sparePidOne(cgroupParent: string): number | undefined {
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const cgroup = readFileSync(`/proc/${name}/cgroup`, 'utf8');
      if (!cgroup.includes(`:memory:/${cgroupParent}/zygote-`)) continue;
      const nsPid = /^NSpid:\s+(.*)$/m.exec(readFileSync(`/proc/${name}/status`, 'utf8'))![1]!.split(/\s+/);
      if (nsPid.length === 2 && nsPid[1] === '1') return Number(name);
    } catch {
      // gone meanwhile
    }
  }
  return undefined;
}

/** Connects to a zygote's control socket; resolves with the connection and the pid its hello names. */
function helloFrom(socketPath: string): Promise<{ socket: Socket; pid: number }> {
  return new Promise((resolve, reject) => {
    const socket = connect(socketPath);
    let received = '';
    socket.setEncoding('utf8');
    socket.on('error', reject);
    socket.on('close', () =>
      reject(new Error(`the zygote closed the connection before its hello: ${received}`)),
    );
    socket.on('data', (chunk: string) => {
      received += chunk;
      if (received.includes('\n')) resolve({ socket, pid: (JSON.parse(received) as { pid: number }).pid });
    });
  });
}

describe('sandboxes forked from a zygote', { skip: skipReason }, async () => {
  const server: TestServer = await startTestServer('zygote', { env: { SANDPOOL_ZYGOTE: 'true' } });
  const body = interpreterPool({ max: 16, ready: 1 });
  assert.equal(
    await createPool(server, 'forked', {
      ...body,
      properties: { ...body.properties, preloadModules: ['numpy', 'pandas'] },
    }),
    'Succeeded',
  );
  const run = async (identifier: string, code: string) => {
    const answer = await execute(server, 'forked', identifier, code);
    assert.equal(answer.status, 200, answer.text);
    return answer;
  };
  const result = async (identifier: string, code: string) => (await run(identifier, code)).json.result;
  /** The identifier's sandbox (its session's id), made if it has none. */
  const sandboxOf = async (identifier: string) =>
    (await run(identifier, '1')).headers.get('x-ms-session-guid')!;
  const controlDir = join(server.config.runDir, 'zygote');
  /** The control sockets of the zygotes running for this server. */
  const zygoteSockets = () =>
    readdirSync(controlDir)
      .map((name) => join(controlDir, name, 'zygote.sock'))
      .filter((path) => existsSync(path));

  it('gives each session the interpreter a runc sandbox has, with the preload in sys.modules', async () => {
    // The spare rehearsed a first request (binding `rehearsed`) before this session took it: nothing of it is left.
    const names = await result('fresh', 'sorted(k for k in globals() if not k.startswith("__"))');
    assert.equal(names.executionResult, '[]');
    const first = await result(
      'alice',
      'import json, sys, os\nx = 41\njson.dumps([sys.argv, "pandas" in sys.modules, "pandas" in globals(), os.getcwd(), os.environ["HOME"]])',
    );
    assert.deepEqual(JSON.parse(first.executionResult as string), [
      ['/opt/sandpool/agent/agent.py', '/run/sandpool/agent.sock'],
      true,
      false,
      '/mnt/data',
      '/home/user',
    ]);
    assert.equal((await result('alice', 'x + 1')).executionResult, 42);
    const frame = await result(
      'alice',
      'import pandas as pd\nint(pd.DataFrame({"a": [1, 2, 3]})["a"].sum())',
    );
    assert.equal(frame.executionResult, 6);
  });

  it('walls each session in as runc does', async () => {
    const probe = await result(
      'walls',
      [
        'import os, socket',
        'status = dict(l.split(":\\t", 1) for l in open("/proc/self/status").read().splitlines() if ":\\t" in l)',
        'print(os.getuid(), os.getpid(), socket.gethostname())',
        'print(status["CapEff"].strip(), status["CapBnd"].strip(), status["NoNewPrivs"].strip(), status["Seccomp"].strip())',
        'print(open("/proc/self/uid_map").read().split())',
        'print([l.split()[4] for l in open("/proc/self/mountinfo") if l.split()[4] in ("/", "/mnt/data", "/tmp")])',
        'print(sorted({os.readlink(f"/proc/1/fd/{fd}") for fd in os.listdir("/proc/1/fd")}))',
        'kinds = ("user", "mnt", "pid", "net", "ipc", "uts", "cgroup")',
        'print([k for k in kinds if os.readlink(f"/proc/1/ns/{k}") != os.readlink(f"/proc/self/ns/{k}")])',
        'print(sorted({l.strip().split(":", 2)[2] for l in open("/proc/self/cgroup")}))',
      ].join('\n'),
    );
    const [who, caps, uidMap, mounts, initFds, apart, cgroupPaths] = probe.stdout.trim().split('\n');
    assert.equal(who, '1000 2 sandbox', 'uid 1000, the agent as pid 2 under its own pid 1');
    assert.equal(
      caps,
      '0000000000000000 0000000000000000 1 2',
      'no capabilities, no_new_privs, seccomp filtering',
    );
    const [inside, hostStart, size] = JSON.parse(uidMap!.replaceAll("'", '"')) as string[];
    assert.equal(inside, '0');
    assert.equal(size, '65536');
    assert.ok(Number(hostStart) >= server.config.idBase, `its own host id range, from ${hostStart}`);
    assert.deepEqual(JSON.parse(mounts!.replaceAll("'", '"')), ['/', '/tmp', '/mnt/data']);
    // pid 1 holds nothing of the host, its console log least of all: only /dev/null.
    assert.deepEqual(JSON.parse(initFds!.replaceAll("'", '"')), ['/dev/null']);
    // The agent and its pid 1 share every namespace, the cgroup one rooted at the sandbox's cgroups.
    assert.equal(apart, '[]', 'namespaces the agent does not share with pid 1');
    assert.equal(cgroupPaths, "['/']", 'the agent sees its own cgroups as the root');
    const root = await result('walls', 'bool(os.statvfs("/").f_flag & os.ST_RDONLY)');
    assert.equal(root.executionResult, true, 'the image is mounted read-only');
    // Its own cgroup, with the pool's limits.
    const sandbox = await sandboxOf('walls');
    const memory = join('/sys/fs/cgroup/memory', server.config.cgroupParent, sandbox);
    assert.equal(Number(readFileSync(join(memory, 'memory.limit_in_bytes'), 'utf8')), 512 * MIB);
    const pids = join('/sys/fs/cgroup/pids', server.config.cgroupParent, sandbox);
    assert.equal(readFileSync(join(pids, 'pids.max'), 'utf8').trim(), '256');
    assert.ok(readFileSync(join(memory, 'cgroup.procs'), 'utf8').trim().split('\n').length >= 2);
  });

  it('serves files, interrupts a run past its timeout, and reports its own OOM as oom', async () => {
    const upload = new FormData();
    upload.append('file', new Blob(['a,b\n1,2\n']), 'table.csv');
    const uploaded = await server.request('POST', `${poolPath('forked')}/files?${DATA}&identifier=files`, {
      raw: upload,
    });
    assert.equal(uploaded.status, 200, uploaded.text);
    const read = await result(
      'files',
      'import pandas as pd\nint(pd.read_csv("/mnt/data/table.csv")["b"].sum())',
    );
    assert.equal(read.executionResult, 2);
    const slow = await execute(server, 'forked', 'files', 'import time\ntime.sleep(30)', {
      timeoutInSeconds: 1,
    });
    assert.equal(slow.json.status, 'Failed');
    assert.match(slow.text, /KeyboardInterrupt|timed out|Timeout/i);
    assert.equal((await result('files', '"still here"')).executionResult, 'still here');

    const hog = await execute(server, 'forked', 'hog', 'hog = b"x" * (1024 * 1024 * 1024)');
    assert.equal(hog.json.error.code, 'SessionLost');
    const next = await run('hog', '"fresh"');
    assert.equal(next.headers.get('x-sandpool-previous-session-ended'), 'oom');
  });

  it('shares the prepared state: a session is charged only what it writes', async () => {
    await run('light', 'import numpy, pandas\n1');
    const sandbox = await sandboxOf('light');
    const charged = Number(
      readFileSync(
        join('/sys/fs/cgroup/memory', server.config.cgroupParent, sandbox, 'memory.usage_in_bytes'),
        'utf8',
      ),
    );
    // A runc sandbox that imported pandas holds ~42 MiB; the fork holds what it touched since.
    assert.ok(charged < 24 * MIB, `${charged / MIB} MiB charged`);
    const zygotes = readdirSync(join('/sys/fs/cgroup/memory', server.config.cgroupParent)).filter((name) =>
      name.startsWith('zygote-'),
    );
    assert.equal(zygotes.length, 1, 'one zygote for the pool’s image and preload list');
    const metrics = withoutNodeLabel((await server.request('GET', '/metrics')).text);
    const prepared = /^sandpool_pool_prepared_memory_bytes\{pool="tests\/forked"\} (\d+)$/m.exec(metrics);
    assert.ok(prepared && Number(prepared[1]) > 30 * MIB, `the shared state, with pandas: ${prepared?.[1]}`);
  });

  it('takes requests from host root alone: another local account cannot reach a zygote', async () => {
    await sandboxOf('local');
    const sockets = zygoteSockets();
    assert.ok(sockets.length > 0, 'a zygote runs');
    assert.equal(statSync(controlDir).mode & 0o777, 0o700);
    for (const socket of sockets) {
      const { mode, uid } = statSync(socket);
      assert.equal(uid, 0);
      assert.equal(mode & 0o777, 0o600);
      // nobody, as any account on the host but root: the connection is refused before a request.
      const attempt = spawnSync(
        'setpriv',
        ['--reuid=65534', '--regid=65534', '--clear-groups', '/usr/bin/python3', '-c', CONNECT, socket],
        { encoding: 'utf8' },
      );
      assert.notEqual(attempt.status, 0, attempt.stdout);
      assert.match(attempt.stderr, /PermissionError/);
    }
  });

  it('replaces a spare that died while it waited, and no start fails for it', async () => {
    await sandboxOf('spare-death-1');
    const spare = await until('the zygote’s spare', () => sparePidOne(server.config.cgroupParent));
    const failures = async () => {
      const metrics = withoutNodeLabel((await server.request('GET', '/metrics')).text);
      return Number(
        /^sandpool_sandbox_start_failures_total\{pool="tests\/forked"\} (\d+)$/m.exec(metrics)?.[1] ?? 0,
      );
    };
    const status = () =>
      server.server.pools.manager(poolId(SUBSCRIPTION, RESOURCE_GROUP, 'forked'))!.status();
    const before = await failures();
    process.kill(spare, 'SIGKILL');
    await until('the spare is gone', () => !existsSync(`/proc/${spare}`));
    // The first takes the ready sandbox and the warm set refills through the zygote; the second
    // waits for that refill.
    assert.equal((await result('spare-death-2', '6 * 7')).executionResult, 42);
    await until('the warm set refilled', () => {
      const { ready, consecutiveStartFailures } = status();
      return ready >= 1 || consecutiveStartFailures > 0;
    });
    assert.equal((await result('spare-death-3', '6 * 7')).executionResult, 42);
    assert.equal(await failures(), before, 'no sandbox failed to start');
  });

  it('keeps serving with more descriptors open than select() can watch', async () => {
    // A zygote holds two descriptors per sandbox, its output pipes: past 1,024 of them (about 500
    // sandboxes) select() fails. Idle connections to its control socket, two descriptors each in the
    // zygote, take it there without 500 sandboxes.
    await sandboxOf('descriptors-before');
    const [socketPath] = zygoteSockets();
    const { socket: first, pid } = await helloFrom(socketPath!);
    const connections = [first];
    try {
      for (let i = 0; i < 560; i++) {
        const hello = await helloFrom(socketPath!);
        connections.push(hello.socket);
        assert.equal(hello.pid, pid, 'the same zygote answers');
      }
      assert.ok(readdirSync(`/proc/${pid}/fd`).length > 1100, 'the zygote holds more than 1,024 descriptors');
      assert.equal((await result('descriptors-after', '6 * 7')).executionResult, 42);
      assert.equal((await result('descriptors-before', '6 * 7')).executionResult, 42);
      assert.equal(await helloFrom(socketPath!).then(({ socket, pid }) => (socket.destroy(), pid)), pid);
    } finally {
      for (const socket of connections) socket.destroy();
    }
  });

  it('leaves nothing behind when a session ends', async () => {
    const sandbox = await sandboxOf('gone');
    const procs = readFileSync(
      join('/sys/fs/cgroup/memory', server.config.cgroupParent, sandbox, 'cgroup.procs'),
      'utf8',
    )
      .trim()
      .split('\n')
      .map(Number);
    assert.equal(
      (await server.request('DELETE', `${poolPath('forked')}/session?${DATA}&identifier=gone`)).status,
      204,
    );
    await until('its processes are gone', () => procs.every((pid) => !existsSync(`/proc/${pid}`)));
    for (const controller of ['memory', 'pids', 'cpu', 'devices']) {
      assert.ok(
        !existsSync(join('/sys/fs/cgroup', controller, server.config.cgroupParent, sandbox)),
        controller,
      );
    }
    assert.ok(!existsSync(join(server.config.paths.stateDir, sandbox)));
  });
});
