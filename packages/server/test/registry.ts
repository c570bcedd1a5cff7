/**
 * A real OCI registry on loopback for image tests (Debian's docker-registry), and test images
 * built here with umoci from the host's static busybox: nothing is downloaded. Each registry gets
 * its own port and storage, optionally behind htpasswd basic auth, and is stopped after the file.
 */

import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { after } from 'node:test';

import { runCommand } from '../src/sandbox/command.js';

export const REGISTRY_USER = 'alice';
export const REGISTRY_PASSWORD = 's3cret-registry-password';
/** bcrypt of REGISTRY_PASSWORD (docker-registry's htpasswd takes only bcrypt). */
const REGISTRY_HTPASSWD = `${REGISTRY_USER}:$2b$12$exrPAxcFxQbpGzNxOHXHxO8W.zJoKfrPJV0tF5WnTlSe.SCx7NOyW`;

export interface TestRegistry {
  /** `127.0.0.1:<port>` */
  host: string;
  /** Pushes an OCI layout's image to `<host>/<name>`. */
  push(layout: string, name: string): Promise<void>;
}

/** A loopback port nobody listens on now. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  if (typeof address !== 'object' || !address) throw new Error('no port');
  return address.port;
}

async function run(file: string, args: string[]): Promise<string> {
  const result = await runCommand(file, args, { timeoutMs: 120_000 });
  if (result.code !== 0) throw new Error(`${file} ${args.join(' ')}: ${result.stderr}`);
  return result.stdout;
}

async function untilAnswers(url: string, child: ChildProcess): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (child.exitCode !== null) throw new Error(`docker-registry exited with ${child.exitCode}`);
    const answer = await fetch(url).catch(() => undefined);
    if (answer) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`docker-registry did not answer at ${url}`);
}

export async function startRegistry(options: { auth?: boolean } = {}): Promise<TestRegistry> {
  const dir = mkdtempSync('/var/tmp/sandpool-test-registry-');
  const port = await freePort();
  const host = `127.0.0.1:${port}`;
  const auth = options.auth
    ? `auth:\n  htpasswd:\n    realm: sandpool-test\n    path: ${join(dir, 'htpasswd')}\n`
    : '';
  writeFileSync(join(dir, 'htpasswd'), `${REGISTRY_HTPASSWD}\n`);
  writeFileSync(
    join(dir, 'config.yml'),
    `version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: ${join(dir, 'data')}\nhttp:\n  addr: ${host}\n${auth}`,
  );
  const child = spawn('docker-registry', ['serve', join(dir, 'config.yml')], { stdio: 'ignore' });
  after(() => {
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });
  await untilAnswers(`http://${host}/v2/`, child);
  return {
    host,
    async push(layout, name) {
      await run('skopeo', [
        'copy',
        '--quiet',
        '--dest-tls-verify=false',
        ...(options.auth ? ['--dest-creds', `${REGISTRY_USER}:${REGISTRY_PASSWORD}`] : []),
        `oci:${layout}`,
        `docker://${host}/${name}`,
      ]);
    },
  };
}

/**
 * An OCI layout holding a one-layer image: the host's static busybox and a web root, whose command
 * serves it with `busybox httpd` on `port`. Returns `<layout dir>:<tag>`.
 */
export async function buildBusyboxImage(
  options: { port?: number; arch?: string; page?: string } = {},
): Promise<string> {
  const dir = mkdtempSync('/var/tmp/sandpool-test-image-');
  after(() => rmSync(dir, { recursive: true, force: true }));
  const layout = join(dir, 'layout');
  const bundle = join(dir, 'bundle');
  await run('umoci', ['init', '--layout', layout]);
  await run('umoci', ['new', '--image', `${layout}:base`]);
  await run('umoci', ['unpack', '--image', `${layout}:base`, bundle]);
  mkdirSync(join(bundle, 'rootfs', 'bin'), { recursive: true });
  mkdirSync(join(bundle, 'rootfs', 'www'), { recursive: true });
  copyFileSync('/bin/busybox', join(bundle, 'rootfs', 'bin', 'busybox'));
  writeFileSync(join(bundle, 'rootfs', 'www', 'index.html'), options.page ?? 'hello from busybox\n');
  await run('umoci', ['repack', '--image', `${layout}:web`, bundle]);
  const command = ['/bin/busybox', 'httpd', '-f', '-p', String(options.port ?? 8080), '-h', '/www'];
  await run('umoci', [
    'config',
    '--image',
    `${layout}:web`,
    ...command.flatMap((part) => ['--config.cmd', part]),
    '--config.env',
    'GREETING=hello',
    '--config.workingdir',
    '/www',
    ...(options.arch ? ['--architecture', options.arch] : []),
    '--tag',
    'web',
  ]);
  return `${layout}:web`;
}
