/**
 * A real PostgreSQL server for tests: Debian's binaries (scripts/setup.sh installs them), a cluster
 * made by initdb in a temporary directory, run as the `postgres` user and reached only through a
 * unix socket in that directory (no TCP port at all). Stopped and removed when the test ends; it
 * can be stopped and started meanwhile, to test what an outage does.
 */

import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';

import pg from 'pg';

const POSTGRES_LIB = '/usr/lib/postgresql';

/** The newest installed server's bin directory, if PostgreSQL is installed. */
function serverBin(): string | undefined {
  if (!existsSync(POSTGRES_LIB)) return undefined;
  const versions = readdirSync(POSTGRES_LIB)
    .filter((v) => existsSync(join(POSTGRES_LIB, v, 'bin', 'pg_ctl')))
    .sort((a, b) => Number(b) - Number(a));
  return versions[0] && join(POSTGRES_LIB, versions[0], 'bin');
}

/** Why PostgreSQL tests cannot run here, if they cannot. */
export const postgresSkipReason: string | undefined =
  process.getuid?.() !== 0
    ? 'PostgreSQL tests run the server as the postgres user, which needs root'
    : serverBin() === undefined
      ? 'PostgreSQL is not installed (scripts/setup.sh installs it)'
      : undefined;

export interface PostgresServer {
  /** A URL for a new, empty database of its own. */
  createDatabase(name: string): Promise<string>;
  stop(): void;
  start(): void;
  remove(): void;
}

export function startPostgres(): PostgresServer {
  const bin = serverBin()!;
  const dir = mkdtempSync('/var/tmp/sandpool-pg-');
  const data = join(dir, 'data');
  const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
  const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
  chownSync(dir, uid, gid);
  chmodSync(dir, 0o700);
  const asPostgres = (command: string, args: string[]) => {
    const result = spawnSync('runuser', ['-u', 'postgres', '--', join(bin, command), ...args], {
      encoding: 'utf8',
    });
    if (result.status !== 0) throw new Error(`${command} failed: ${result.stderr || result.stdout}`);
  };
  asPostgres('initdb', ['-D', data, '-U', 'postgres', '-A', 'trust', '--no-sync', '-E', 'UTF8']);
  // One cluster per test process: the port only names the socket file, in a directory of its own.
  const port = 5432;
  const options = `-k ${dir} -p ${port} -c listen_addresses='' -c fsync=off -c full_page_writes=off`;
  const start = () =>
    asPostgres('pg_ctl', ['-D', data, '-l', join(dir, 'log'), '-o', options, '-w', 'start']);
  const stop = () => asPostgres('pg_ctl', ['-D', data, '-m', 'fast', '-w', 'stop']);
  start();
  const url = (database: string) => `postgres://postgres@${encodeURIComponent(dir)}:${port}/${database}`;
  let running = true;
  return {
    async createDatabase(name) {
      const admin = new pg.Client({ connectionString: url('postgres') });
      await admin.connect();
      try {
        await admin.query(`CREATE DATABASE ${name}`);
      } finally {
        await admin.end();
      }
      return url(name);
    },
    stop() {
      stop();
      running = false;
    },
    start() {
      start();
      running = true;
    },
    remove() {
      if (running) stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
