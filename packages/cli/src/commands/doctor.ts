/**
 * @module commands/doctor
 * `sandpool doctor`: checks that this host can run Sandpool's sandboxes (OCI runtimes, conmon,
 * cgroups, namespaces, the seccomp profile, the image, disk space) and, when a profile or the
 * environment names a server, that it is live and ready. Each failure says how to fix it; the exit
 * code is 1 when anything failed.
 */

import { execFile } from 'node:child_process';
import { access, readFile, readdir, statfs } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

import { Command } from '@commander-js/extra-typings';

import type { Context } from '../context.js';
import { ExitCode } from '../failure.js';

export interface Check {
  name: string;
  ok: boolean;
  detail: string;
  /** What to do when the check fails. */
  fix?: string;
}

const MIN_FREE_BYTES = 2 * 1024 ** 3;
const run = promisify(execFile);

async function version(command: string): Promise<string> {
  const { stdout } = await run(command, ['--version'], { timeout: 10_000 });
  return stdout.split('\n')[0]?.trim() ?? '';
}

async function readable(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

/** Runs `probe`; a thrown error is the check failing with that message. */
async function check(name: string, fix: string, probe: () => Promise<string>): Promise<Check> {
  try {
    return { name, ok: true, detail: await probe() };
  } catch (error) {
    return { name, ok: false, detail: error instanceof Error ? error.message : String(error), fix };
  }
}

/** The host checks; `home` is the server's home (images, store). */
export async function hostChecks(home: string): Promise<Check[]> {
  return Promise.all([
    check('running as root', 'Run the server as root: it manages namespaces, cgroups and mounts.', () =>
      process.getuid?.() === 0
        ? Promise.resolve('uid 0')
        : Promise.reject(new Error(`uid ${process.getuid?.()}`)),
    ),
    check('runc', 'apt-get install runc (or run scripts/setup.sh)', () => version('runc')),
    check('runsc (gVisor, optional runtime)', 'apt-get install runsc', () => version('runsc')),
    check('conmon', 'apt-get install conmon', () => version('conmon')),
    check(
      'cgroups',
      'Mount cgroup v2 at /sys/fs/cgroup, or v1 with the memory, cpu, cpuacct and pids controllers',
      async () => {
        if (await readable('/sys/fs/cgroup/cgroup.controllers')) {
          const controllers = (await readFile('/sys/fs/cgroup/cgroup.controllers', 'utf8'))
            .trim()
            .split(/\s+/);
          const missing = ['memory', 'cpu', 'pids'].filter((c) => !controllers.includes(c));
          if (missing.length) throw new Error(`cgroup v2 lacks ${missing.join(', ')}`);
          return 'v2';
        }
        const mounted = await readdir('/sys/fs/cgroup');
        const missing = ['memory', 'cpu', 'cpuacct', 'pids'].filter((c) => !mounted.includes(c));
        if (missing.length) throw new Error(`cgroup v1 lacks ${missing.join(', ')}`);
        return 'v1 (hybrid)';
      },
    ),
    check('user namespaces', 'sysctl -w user.max_user_namespaces=15000', async () => {
      const max = Number((await readFile('/proc/sys/user/max_user_namespaces', 'utf8')).trim());
      if (!(max > 0)) throw new Error('user.max_user_namespaces is 0');
      return `up to ${max}`;
    }),
    check('seccomp profile', 'apt-get install golang-github-containers-common', async () => {
      await access('/usr/share/containers/seccomp.json');
      return '/usr/share/containers/seccomp.json';
    }),
    check('code-interpreter image', 'Run scripts/setup.sh, which builds it (about two minutes)', async () => {
      const manifest = join(home, 'images', 'python-lts', 'rootfs', 'etc', 'sandpool', 'image.json');
      const image = JSON.parse(
        await readFile(manifest, 'utf8').catch(() => {
          throw new Error(`no image at ${join(home, 'images', 'python-lts')}`);
        }),
      ) as { runtimes?: { name: string; version: string }[] };
      return (image.runtimes ?? []).map((r) => `${r.name} ${r.version}`).join(', ');
    }),
    check('disk space', `Free space on the file system of ${home}`, async () => {
      const stats = await statfs(home).catch(() => statfs('/'));
      const free = stats.bavail * stats.bsize;
      const text = `${(free / 1024 ** 3).toFixed(1)} GiB free`;
      if (free < MIN_FREE_BYTES) throw new Error(`${text}; sandboxes need at least 2 GiB`);
      return text;
    }),
  ]);
}

/** The server checks, when a profile or the environment names one. */
async function serverChecks(cli: Context): Promise<Check[]> {
  let client;
  try {
    client = cli.client();
  } catch {
    return [];
  }
  const live = await check(
    'server answers',
    'Start it with `sandpool serve`, or check the endpoint with `sandpool profile show`',
    async () => {
      if (!(await client.healthy())) throw new Error('/healthz did not answer 200');
      return cli.profile().endpoint;
    },
  );
  if (!live.ok) return [live];
  const readiness = await client.readiness();
  // The checks come only to a caller with a credential; without one, ready or not is all there is.
  const checks = readiness.checks ?? [{ name: 'readiness', ok: readiness.status === 'ready' }];
  return [
    live,
    ...checks.map((c) => ({
      name: `server: ${c.name}`,
      ok: c.ok,
      detail: c.detail ?? 'ok',
      ...(!c.ok && { fix: 'See the server log and `sandpool sessionpool show` for the pool.' }),
    })),
  ];
}

export function doctorCommand(context: () => Context, setExitCode: (code: number) => void): Command {
  return new Command('doctor')
    .description(
      'Check that this host can run Sandpool, and that the signed-in server is ready; prints a fix for each failure.',
    )
    .option('--home <dir>', 'the server’s home (default: $SANDPOOL_HOME, else /var/lib/sandpool)')
    .action(async (flags) => {
      const cli = context();
      const home = flags.home ?? cli.io.env('SANDPOOL_HOME') ?? '/var/lib/sandpool';
      const checks = [...(await hostChecks(home)), ...(await serverChecks(cli))];
      if (cli.options.outputChosen) {
        cli.print(checks, [
          ['Check', (c) => c.name],
          ['Ok', (c) => c.ok],
          ['Detail', (c) => c.detail],
          ['Fix', (c) => c.fix],
        ]);
      } else {
        for (const c of checks) {
          cli.io.stdout(`${c.ok ? '✔' : '✖'} ${c.name}: ${c.detail}\n`);
          if (!c.ok && c.fix) cli.io.stdout(`  fix: ${c.fix}\n`);
        }
      }
      // gVisor is optional: its absence is reported but does not fail the doctor.
      const failed = checks.filter((c) => !c.ok && !c.name.includes('optional'));
      setExitCode(failed.length ? ExitCode.Failed : ExitCode.Ok);
    });
}
