/**
 * A real OCI registry on loopback for image tests (Debian's docker-registry), and test images
 * built here with umoci from the host's static busybox: nothing is downloaded. Each registry gets
 * its own port and storage, optionally behind htpasswd basic auth, and is stopped after the file.
 */

import { spawn, type ChildProcess } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { after } from 'node:test';

import { runCommand } from '../src/sandbox/command.js';

/** Registers what to remove when the caller is done: node:test's `after` in tests, a list in benchmarks. */
export type Cleanup = (undo: () => void) => void;

export const REGISTRY_USER = 'alice';
export const REGISTRY_PASSWORD = 's3cret-registry-password';
/**
 * bcrypt of REGISTRY_PASSWORD (docker-registry's htpasswd takes only bcrypt), at the lowest cost:
 * the registry checks it on every request, and cost 12 made each push and pull take seconds.
 */
const REGISTRY_HTPASSWD = `${REGISTRY_USER}:$2a$04$ljZha6nHYO/5tZWRzsHTH.gVwGTxmS8hn8jd300bpICwu/.9uY1AS`;

export interface TestRegistry {
  /** `127.0.0.1:<port>` */
  host: string;
  /** Pushes an OCI layout's image to `<host>/<name>`. */
  push(layout: string, name: string): Promise<void>;
}

/** A loopback port nobody listens on now. */
/**
 * A loopback port nothing listens on, below the ephemeral range: no other test's port 0 (a registry,
 * a server) can land on it between this check and its use, as one did on a just-freed ephemeral port.
 */
export async function refusingPort(): Promise<number> {
  const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
  for (let port = low - 1 - Math.floor(Math.random() * 1000); port > 1024; port--) {
    const server = createServer();
    const bound = await new Promise<boolean>((resolve) => {
      server.once('error', () => resolve(false));
      server.listen(port, '127.0.0.1', () => resolve(true));
    });
    if (bound) {
      await new Promise((resolve) => server.close(resolve));
      return port;
    }
  }
  throw new Error('no free port below the ephemeral range');
}

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

export async function startRegistry(
  options: { auth?: boolean; cleanup?: Cleanup } = {},
): Promise<TestRegistry> {
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
  (options.cleanup ?? after)(() => {
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
  // Setuid root, as su is in many base images: the puller must strip the bit.
  chmodSync(join(bundle, 'rootfs', 'bin', 'busybox'), 0o4755);
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

/** The test app's start script: an optional delay, busybox httpd in the background, and an exit on request. */
const START_SCRIPT = `#!/bin/sh
echo "app starting: greeting=$GREETING token=\${SECRET_TOKEN:+set} port=\${PORT:-8080}"
sleep "\${START_DELAY:-0}"
/bin/busybox httpd -f -p "\${PORT:-8080}" -h /www &
while [ ! -f /tmp/exit-code ]; do sleep 0.1; done
code=$(cat /tmp/exit-code)
echo "app exiting with $code" >&2
exit "$code"
`;

/** CGI scripts: what the request looked like, liveness that can be failed, and an exit with a code. */
const CGI: Record<string, string> = {
  echo: `#!/bin/sh
printf 'Content-Type: text/plain\\r\\n\\r\\n'
echo "method=$REQUEST_METHOD"
echo "uri=$REQUEST_URI"
echo "forwarded-for=$HTTP_X_FORWARDED_FOR"
echo "forwarded-proto=$HTTP_X_FORWARDED_PROTO"
echo "forwarded-host=$HTTP_X_FORWARDED_HOST"
echo "forwarded-prefix=$HTTP_X_FORWARDED_PREFIX"
echo "authorization=$HTTP_AUTHORIZATION"
echo "custom=$HTTP_X_CUSTOM"
echo "greeting=$GREETING"
echo "token=$SECRET_TOKEN"
echo "whoami=$(id -u)"
if [ -n "$CONTENT_LENGTH" ]; then
  echo "body-sha256=$(head -c "$CONTENT_LENGTH" | sha256sum | cut -c1-64)"
fi
`,
  health: `#!/bin/sh
if [ -f /tmp/sick ]; then printf 'Status: 500 Sick\\r\\n\\r\\nsick\\n'; else printf 'Content-Type: text/plain\\r\\n\\r\\nok\\n'; fi
`,
  slow: `#!/bin/sh
sleep 1
printf 'Content-Type: text/plain\\r\\n\\r\\nslow ok\\n'
`,
  sicken: `#!/bin/sh
touch /tmp/sick
printf 'Content-Type: text/plain\\r\\n\\r\\nsick now\\n'
`,
  connect: `#!/bin/sh
# ?<address>&<port>: an HTTP GET to that address from inside the sandbox.
target=\${QUERY_STRING%%&identifier=*}
host=\${target%%&*}
port=\${target#*&}
printf 'Content-Type: text/plain\\r\\n\\r\\n'
if answer=$(printf 'GET /cgi-bin/echo HTTP/1.0\\r\\n\\r\\n' | nc -w 3 "$host" "$port" 2>&1) && [ -n "$answer" ]; then
  echo "connected"
  echo "$answer"
else
  echo "refused: $answer"
fi
`,
  resolve: `#!/bin/sh
# ?<name>: the name looked up through the sandbox's resolver.
printf 'Content-Type: text/plain\\r\\n\\r\\n'
nslookup "\${QUERY_STRING%%&identifier=*}" 2>&1
`,
  exit: `#!/bin/sh
code=\${QUERY_STRING#code=}
echo "\${code%%&*}" > /tmp/exit-code
printf 'Content-Type: text/plain\\r\\n\\r\\nexiting\\n'
`,
};

/**
 * One connection of the raw echo server (`busybox nc -ll -e`): it reads the request head, answers
 * 101 to an upgrade (with the WebSocket accept key) or 200 with the head it received, then echoes
 * every byte until the connection closes, and says so on stderr.
 */
const ECHO_SCRIPT = `#!/bin/sh
cr=$(printf '\\r')
IFS= read -r request
request=\${request%$cr}
key=''
upgrade=''
head=''
while IFS= read -r line; do
  line=\${line%$cr}
  [ -z "$line" ] && break
  head="$head$line
"
  case "$line" in
    [Ss]ec-[Ww]eb[Ss]ocket-[Kk]ey:*) key=$(echo "\${line#*:}" | tr -d ' ') ;;
    [Uu]pgrade:*) upgrade=yes ;;
  esac
done
if [ -n "$upgrade" ]; then
  accept=$(printf '%s' "\${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11" | sha1sum | cut -c1-40 | xxd -r -p | base64)
  printf 'HTTP/1.1 101 Switching Protocols\\r\\nUpgrade: websocket\\r\\nConnection: Upgrade\\r\\nSec-WebSocket-Accept: %s\\r\\n\\r\\n' "$accept"
else
  printf 'HTTP/1.1 200 OK\\r\\nContent-Type: text/plain\\r\\nConnection: close\\r\\n\\r\\n%s\\n%s\\n' "$request" "$head"
fi
cat
echo "connection closed: $request" >&2
`;

/**
 * The custom container test app, from the host's static busybox: `/app/start.sh` serves /www with
 * busybox httpd on $PORT (8080) after $START_DELAY seconds, CGI scripts under /cgi-bin report the
 * request as the container saw it and let a test fail its health or make it exit with a code, and
 * `/app/echo.sh` is a raw echo server for `busybox nc -ll -e`. Returns `<layout dir>:app`.
 */
export async function buildAppImage(cleanup: Cleanup = after): Promise<string> {
  const dir = mkdtempSync('/var/tmp/sandpool-test-app-');
  cleanup(() => rmSync(dir, { recursive: true, force: true }));
  const layout = join(dir, 'layout');
  const bundle = join(dir, 'bundle');
  await run('umoci', ['init', '--layout', layout]);
  await run('umoci', ['new', '--image', `${layout}:base`]);
  await run('umoci', ['unpack', '--image', `${layout}:base`, bundle]);
  const rootfs = join(bundle, 'rootfs');
  for (const sub of ['bin', 'app', 'www/cgi-bin', 'tmp']) mkdirSync(join(rootfs, sub), { recursive: true });
  chmodSync(join(rootfs, 'tmp'), 0o1777);
  copyFileSync('/bin/busybox', join(rootfs, 'bin', 'busybox'));
  symlinkSync('busybox', join(rootfs, 'bin', 'sh'));
  const script = (path: string, text: string) => {
    writeFileSync(join(rootfs, path), text);
    chmodSync(join(rootfs, path), 0o755);
  };
  script('app/start.sh', START_SCRIPT);
  script('app/echo.sh', ECHO_SCRIPT);
  for (const [name, text] of Object.entries(CGI)) script(`www/cgi-bin/${name}`, text);
  writeFileSync(join(rootfs, 'www', 'index.html'), 'hello from the app\n');
  await run('umoci', ['repack', '--image', `${layout}:app`, bundle]);
  await run('umoci', [
    'config',
    '--image',
    `${layout}:app`,
    '--config.entrypoint',
    '/bin/sh',
    '--config.cmd',
    '/app/start.sh',
    '--config.env',
    'PATH=/bin',
    '--config.env',
    'GREETING=hello',
    '--config.workingdir',
    '/www',
    '--tag',
    'app',
  ]);
  return `${layout}:app`;
}
