/**
 * What hostile code in a sandbox can and cannot reach. Network probes target only loopback: the
 * host's 127.0.0.1 (which a sandbox must not reach) and the sandbox's own.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import type { InterpreterInstance } from '../../src/pool/interpreter-instance.js';
import { runCommand } from '../../src/sandbox/command.js';
import { skipReason, startPython, testDriver, value } from './harness.js';

const MiB = 1024 * 1024;

describe('sandbox isolation (runc)', { skip: skipReason }, () => {
  const driver = testDriver('iso');
  let a: InterpreterInstance;
  let b: InterpreterInstance;
  let hostServer: Server;
  let hostPort = 0;
  const hostDir = mkdtempSync('/var/tmp/sandpool-host-secret-');
  const hostSecret = join(hostDir, 'secret.txt');

  before(async () => {
    writeFileSync(hostSecret, 'host secret');
    hostServer = createServer((socket) => socket.end('host service\n'));
    await new Promise<void>((resolve) => hostServer.listen(0, '127.0.0.1', resolve));
    hostPort = (hostServer.address() as AddressInfo).port;
    [a, b] = await Promise.all([
      startPython(driver, 'iso-a', { dataBytes: 16 * MiB, tmpBytes: 8 * MiB, pids: 64 }),
      startPython(driver, 'iso-b'),
    ]);
  });
  after(async () => {
    await Promise.all([a.destroy(), b.destroy()]);
    hostServer.close();
    rmSync(hostDir, { recursive: true, force: true });
  });

  it('runs without capabilities, with no_new_privs and a seccomp filter, as a host id outside the host’s users', async () => {
    const status = (await value(a, 'open("/proc/self/status").read()')) as string;
    for (const set of ['CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb']) {
      assert.match(status, new RegExp(`${set}:\\s+0000000000000000`), set);
    }
    assert.match(status, /NoNewPrivs:\s+1/);
    assert.match(status, /Seccomp:\s+2/);
    const { pid } = (await driver.inspect(a.id)) as { pid: number };
    const hostUid = Number(/Uid:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]);
    assert.ok(hostUid >= 1_000_000, `sandbox runs as host uid ${hostUid}`);
  });

  it('boots at a full core, then holds the pool’s CPU limit before any user code runs', async () => {
    const quota = readFileSync(`/sys/fs/cgroup/cpu/sandpool-test/${a.id}/cpu.cfs_quota_us`, 'utf8').trim();
    assert.equal(quota, '25000', 'default 0.25 CPU = 25 ms per 100 ms period');
    const shares = readFileSync(`/sys/fs/cgroup/cpu/sandpool-test/${a.id}/cpu.shares`, 'utf8').trim();
    assert.equal(shares, '1024', 'the boot priority ends with the boot');
    const spin = await value(
      a,
      'import time\nstart = time.monotonic(); cpu = time.process_time()\nwhile time.monotonic() - start < 1.0: pass\nround(time.process_time() - cpu, 2)',
    );
    assert.ok(
      (spin as number) < 0.4,
      `a one-second spin got ${String(spin)} s of CPU under a 0.25-core limit`,
    );
  });

  it('gives each sandbox its own host id range', async () => {
    const hostUid = async (s: InterpreterInstance) => {
      const { pid } = (await driver.inspect(s.id)) as { pid: number };
      return Number(/Uid:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]);
    };
    assert.notEqual(await hostUid(a), await hostUid(b));
  });

  it('cannot write the image, mount, or create namespaces (nested user namespaces included)', async () => {
    const result = await value(
      a,
      [
        'import errno, os, ctypes',
        'out = []',
        'for path in ["/usr/evil", "/etc/evil", "/evil"]:',
        '    try:',
        '        open(path, "w")',
        '        out.append(path)',
        '    except OSError as e:',
        '        pass',
        'libc = ctypes.CDLL(None, use_errno=True)',
        'out.append(libc.unshare(0x00020000))  # CLONE_NEWNS needs CAP_SYS_ADMIN',
        'out.append(libc.mount(b"none", b"/tmp", b"tmpfs", 0, None))',
        'out.append(os.path.exists("/sys/kernel"))',
        'import subprocess',
        'out.append(subprocess.run(["unshare", "-Ur", "true"], capture_output=True).returncode)',
        'out.append(subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode)',
        'out',
      ].join('\n'),
    );
    assert.equal(result, '[-1, -1, False, 1, 1]');
  });

  it('sees only its own processes', async () => {
    const pids = (await value(
      a,
      'import os\nsorted(int(p) for p in os.listdir("/proc") if p.isdigit())',
    )) as string;
    const list = JSON.parse(pids) as number[];
    assert.ok(list.length <= 4, `sandbox sees ${pids}`);
    assert.equal(await value(a, 'open("/proc/1/cmdline").read().split("\\0")[0]'), '/usr/bin/tini');
    assert.equal(await value(a, 'import socket\nsocket.gethostname()'), 'sandbox');
  });

  it('cannot see the host’s files or another sandbox’s files and processes', async () => {
    await value(
      b,
      'open("/mnt/data/b-marker.txt", "w").write("b data")\nimport subprocess\np = subprocess.Popen(["sleep", "300"])',
    );
    const seen = await value(
      a,
      [
        'import os',
        'found = []',
        'for root in ["/mnt", "/tmp", "/var", "/run", "/home", "/opt"]:',
        '    for d, _, files in os.walk(root):',
        '        found += [f for f in files if f in ("b-marker.txt", "secret.txt")]',
        'cmdlines = [open(f"/proc/{p}/cmdline").read() for p in os.listdir("/proc") if p.isdigit()]',
        `(found, any("sleep" in c for c in cmdlines), os.path.exists(${JSON.stringify(hostSecret)}))`,
      ].join('\n'),
    );
    assert.equal(seen, '([], False, False)');
    assert.equal(await value(a, 'import os\nos.path.exists("/proc/1/root/var/lib/sandpool")'), false);
  });

  it('keeps a session’s files from every other account on the host', async () => {
    await value(b, 'open("/mnt/data/private.txt", "w").write("b private")');
    const dir = b.sandbox.dataDir;
    assert.equal(statSync(dir).mode & 0o777, 0o700);
    const stranger = await runCommand('setpriv', [
      '--reuid=65534',
      '--regid=65534',
      '--clear-groups',
      'cat',
      join(dir, 'private.txt'),
    ]);
    assert.notEqual(stranger.code, 0, stranger.stdout);
    assert.match(stranger.stderr, /Permission denied/);
  });

  it('has loopback only: no route out, no host services', async () => {
    const result = await value(
      a,
      [
        'import socket, threading',
        'names = [n for _, n in socket.if_nameindex()]',
        'routes = open("/proc/net/route").read().strip().splitlines()[1:]',
        'try:',
        `    socket.create_connection(("127.0.0.1", ${hostPort}), timeout=2)`,
        '    host = "reached"',
        'except OSError as e:',
        '    host = type(e).__name__',
        'srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(1)',
        'threading.Thread(target=lambda: srv.accept()[0].sendall(b"own"), daemon=True).start()',
        'own = socket.create_connection(srv.getsockname(), timeout=2).recv(3).decode()',
        '(names, routes, host, own)',
      ].join('\n'),
    );
    assert.equal(result, "(['lo'], [], 'ConnectionRefusedError', 'own')");
  });

  it('caps /mnt/data and /tmp so a disk-fill attack stops at the cap', async () => {
    const fill = (path: string) =>
      [
        'import errno',
        'written = 0',
        'try:',
        `    with open(${JSON.stringify(path)}, "wb") as f:`,
        '        while True:',
        '            f.write(b"x" * 1048576)',
        '            f.flush()',
        '            written += 1',
        'except OSError as e:',
        '    err = errno.errorcode[e.errno]',
        `import os\nos.remove(${JSON.stringify(path)})`,
        '(written, err)',
      ].join('\n');
    const data = (await value(a, fill('/mnt/data/fill.bin'))) as string;
    assert.match(data, /^\((1[0-6]|[0-9]), 'ENOSPC'\)$/, `data fill: ${data}`);
    const tmp = (await value(a, fill('/tmp/fill.bin'))) as string;
    assert.match(tmp, /^\([0-8], 'ENOSPC'\)$/, `tmp fill: ${tmp}`);
    assert.equal(await value(a, 'open("/mnt/data/ok.txt", "w").write("fine")'), 4);
  });

  it('caps processes, so a fork bomb gets EAGAIN and the session survives', async () => {
    const result = (await value(
      a,
      [
        'import os, errno, signal',
        'children = []',
        'err = None',
        'try:',
        '    for _ in range(1000):',
        '        pid = os.fork()',
        '        if pid == 0:',
        '            signal.pause()',
        '            os._exit(0)',
        '        children.append(pid)',
        'except OSError as e:',
        '    err = errno.errorcode[e.errno]',
        'for pid in children:',
        '    os.kill(pid, signal.SIGKILL)',
        '    os.waitpid(pid, 0)',
        '(len(children), err)',
      ].join('\n'),
    )) as string;
    const [, forks, err] = /^\((\d+), '(\w+)'\)$/.exec(result) ?? [];
    assert.equal(err, 'EAGAIN', result);
    assert.ok(Number(forks) < 64, `forked ${forks} children under pids.max=64`);
    assert.equal(await value(a, '1 + 1'), 2);
  });
});
