/**
 * Pulling custom-container images from a real registry on loopback (docker-registry), with and
 * without basic auth, through skopeo and umoci: pinned digests, the cache, typed failures, and
 * nothing half-pulled left behind.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';

import { AppError } from '../../src/errors.js';
import { runCommand, type CommandRunner } from '../../src/sandbox/command.js';
import { ImagePuller } from '../../src/sandbox/image/image-puller.js';
import {
  buildBusyboxImage,
  refusingPort,
  REGISTRY_PASSWORD,
  REGISTRY_USER,
  startRegistry,
} from '../registry.js';
import { skipReason } from './harness.js';

/** A runner that records every command line it runs. */
function recording(inner: CommandRunner = runCommand) {
  const calls: string[][] = [];
  const run: CommandRunner = (file, args, options) => {
    calls.push([file, ...args]);
    return inner(file, args, options);
  };
  return { run, calls };
}

const code = (expected: string) => (error: unknown) => {
  assert.ok(error instanceof AppError, String(error));
  assert.equal(error.code, expected, error.message);
  return true;
};

describe('image pulls from a registry on loopback', { skip: skipReason }, async () => {
  const open = await startRegistry();
  const locked = await startRegistry({ auth: true });
  const image = await buildBusyboxImage();
  await open.push(image, 'apps/web:1');
  await locked.push(image, 'private/web:1');
  const armImage = await buildBusyboxImage({ arch: 'arm64' });
  await open.push(armImage, 'apps/web:arm');

  const cacheDir = mkdtempSync('/var/tmp/sandpool-test-images-');
  after(() => rmSync(cacheDir, { recursive: true, force: true }));
  const puller = (run: CommandRunner = runCommand) =>
    new ImagePuller({
      cacheDir,
      insecureRegistries: [open.host, locked.host],
      internalRegistries: [],
      run,
      timeoutMs: 60_000,
    });

  it('pulls by tag, pins the digest, unpacks the rootfs and reads what the image runs', async () => {
    const stages: string[] = [];
    const pulled = await puller().pull(`${open.host}/apps/web:1`, undefined, (s) => stages.push(s));
    assert.deepEqual(stages, ['resolving', 'downloading', 'unpacking']);
    const inspected = await runCommand('skopeo', [
      'inspect',
      '--tls-verify=false',
      '--format',
      '{{.Digest}}',
      `docker://${open.host}/apps/web:1`,
    ]);
    assert.equal(pulled.digest, inspected.stdout.trim());
    assert.equal(pulled.rootfs, join(cacheDir, pulled.digest.slice(7), 'rootfs'));
    assert.equal(readFileSync(join(pulled.rootfs, 'www/index.html'), 'utf8'), 'hello from busybox\n');
    assert.deepEqual(pulled.process.entrypoint, []);
    assert.deepEqual(pulled.process.cmd, ['/bin/busybox', 'httpd', '-f', '-p', '8080', '-h', '/www']);
    assert.ok(existsSync(join(pulled.rootfs, 'mnt/data')), 'mount points are made at unpack');
    assert.equal(statSync(join(pulled.rootfs, 'bin/busybox')).mode & 0o7777, 0o755, 'setuid bit stripped');
    assert.ok(pulled.process.env.includes('GREETING=hello'));
    assert.equal(pulled.process.cwd, '/www');
    assert.deepEqual(readdirSync(join(cacheDir, 'tmp')), [], 'the work directory is cleaned up');
  });

  it('serves a pulled digest from the cache, and shares one download between concurrent pulls', async () => {
    const again = recording();
    await puller(again.run).pull(`${open.host}/apps/web:1`);
    assert.ok(!again.calls.some((c) => c[1] === 'copy'), 'no second download');

    await open.push(image, 'apps/copy:1');
    const digest = (await puller().pull(`${open.host}/apps/web:1`)).digest;
    await puller().remove(digest);
    const shared = recording();
    const one = puller(shared.run);
    const [a, b] = await Promise.all([
      one.pull(`${open.host}/apps/web:1`),
      one.pull(`${open.host}/apps/copy:1`),
    ]);
    assert.equal(a.digest, b.digest);
    assert.equal(shared.calls.filter((c) => c[1] === 'copy').length, 1);
  });

  it('pulls with registry credentials, which never appear on a command line', async () => {
    await puller().remove((await puller().pull(`${open.host}/apps/web:1`)).digest);
    const watched = recording();
    const pulled = await puller(watched.run).pull(`${locked.host}/private/web:1`, {
      username: REGISTRY_USER,
      password: REGISTRY_PASSWORD,
    });
    assert.ok(existsSync(join(pulled.rootfs, 'bin/busybox')));
    assert.ok(watched.calls.some((c) => c[1] === 'inspect' && c.includes('--authfile')));
    assert.ok(watched.calls.some((c) => c[1] === 'copy' && c.includes('--src-authfile')));
    assert.ok(!watched.calls.flat().some((arg) => arg.includes(REGISTRY_PASSWORD)));
    assert.deepEqual(readdirSync(join(cacheDir, 'tmp')), [], 'the auth file is removed');
  });

  it('says why a pull fails, with a stable code for each cause', async () => {
    await assert.rejects(puller().pull(`${locked.host}/private/web:1`), code('RegistryAuthFailed'));
    await assert.rejects(
      puller().pull(`${locked.host}/private/web:1`, { username: REGISTRY_USER, password: 'wrong' }),
      code('RegistryAuthFailed'),
    );
    await assert.rejects(puller().pull(`${open.host}/apps/web:nope`), code('ImageNotFound'));
    await assert.rejects(puller().pull(`${open.host}/apps/absent:1`), code('ImageNotFound'));
    await assert.rejects(puller().pull(`${open.host}/apps/web:arm`), code('ImagePlatformUnsupported'));
    const closed = `127.0.0.1:${await refusingPort()}`;
    const unreachable = new ImagePuller({
      cacheDir,
      insecureRegistries: [closed],
      internalRegistries: [],
      run: runCommand,
    });
    await assert.rejects(unreachable.pull(`${closed}/apps/web:1`), code('RegistryUnreachable'));
    await assert.rejects(puller().pull('Not A/Reference'), code('InvalidImageReference'));
  });

  it('leaves nothing behind when unpacking fails', async () => {
    const failing: CommandRunner = (file, args, options) =>
      file === 'umoci'
        ? Promise.resolve({ code: 1, signal: null, stdout: '', stderr: 'umoci: disk full' })
        : runCommand(file, args, options);
    await open.push(image, 'apps/other:1');
    const digest = (await puller().pull(`${open.host}/apps/web:1`)).digest;
    await puller().remove(digest);
    await assert.rejects(puller(failing).pull(`${open.host}/apps/other:1`), code('ImagePullFailed'));
    assert.ok(!existsSync(join(cacheDir, digest.slice(7))), 'no half-pulled image');
    assert.deepEqual(readdirSync(join(cacheDir, 'tmp')), []);
  });
});
