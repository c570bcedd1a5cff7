/**
 * @module commands/login
 * `sandpool login|logout` and `sandpool profile list|show|use`: named endpoints and credentials, kept
 * like `az login` keeps its accounts. Login checks the endpoint and the key before saving them.
 */

import { existsSync } from 'node:fs';
import { join } from 'node:path';

import { Command } from '@commander-js/extra-typings';
import { ApiError } from '@sandpool/sdk';

import { clientFor, type Context } from '../context.js';
import { CliError, ExitCode, UsageError } from '../failure.js';
import type { Profile } from '../profiles.js';

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]']);

/** On the server's own host, its self-signed certificate is trusted without being named. */
function localCertificate(endpoint: URL, env: (name: string) => string | undefined): string | undefined {
  if (endpoint.protocol !== 'https:' || !LOOPBACK.has(endpoint.hostname)) return undefined;
  const file = join(env('SANDPOOL_HOME') ?? '/var/lib/sandpool', 'tls', 'self-signed.crt');
  return existsSync(file) ? file : undefined;
}

/** What `profile show` and `profile list` print: never the secret itself. */
const masked = (name: string, profile: Profile, current: boolean) => ({
  name,
  current,
  endpoint: profile.endpoint,
  apiKey: `${profile.apiKey.slice(0, 15)}…`,
  subscription: profile.subscription ?? null,
  resourceGroup: profile.resourceGroup ?? null,
  caFile: profile.caFile ?? null,
});

export function loginCommands(context: () => Context): Command[] {
  const login = new Command('login')
    .description(
      'Save an endpoint and credential as a profile (the global --profile names it; default "default").',
    )
    .requiredOption('--endpoint <url>', 'the server, e.g. https://127.0.0.1:8443')
    .option('--api-key <key>', 'an API key or token (default: $SANDPOOL_API_KEY)')
    .option('--resource-group <group>', 'default resource group for pools')
    .option(
      '--ca-file <pem>',
      'trust this CA or self-signed certificate (default on the server’s host: its own)',
    )
    .action(async (flags) => {
      const cli = context();
      let endpoint: URL;
      try {
        endpoint = new URL(flags.endpoint);
      } catch {
        throw new UsageError(
          `--endpoint must be a URL such as https://127.0.0.1:8443; got "${flags.endpoint}"`,
        );
      }
      const apiKey = flags.apiKey ?? cli.io.env('SANDPOOL_API_KEY');
      if (!apiKey) throw new UsageError('give --api-key, or set SANDPOOL_API_KEY');
      const caFile = flags.caFile ?? localCertificate(endpoint, cli.io.env);
      const profile: Profile = {
        endpoint: endpoint.origin,
        apiKey,
        // The program's own --subscription, given at login, becomes the profile's default.
        ...(cli.options.subscription && { subscription: cli.options.subscription }),
        ...(flags.resourceGroup && { resourceGroup: flags.resourceGroup }),
        ...(caFile && { caFile }),
      };
      const client = clientFor(profile, cli.io);
      let note = '';
      try {
        await client.pools.list();
      } catch (error) {
        // A key without the Reader role is still a valid key.
        if (!(error instanceof ApiError && error.status === 403)) throw error;
        note = ' (this key cannot list pools)';
      }
      const name = cli.options.profile ?? 'default';
      cli.profiles.save(name, profile, true);
      cli.io.stderr.write(`Signed in to ${profile.endpoint} as profile "${name}"${note}.\n`);
    });

  const logout = new Command('logout')
    .description('Forget a profile (the global --profile, else the current one).')
    .action(() => {
      const cli = context();
      const name = cli.options.profile ?? cli.profiles.read().current;
      if (name === undefined || !cli.profiles.remove(name)) {
        throw new CliError(`no profile "${name ?? ''}" to forget`, ExitCode.NotFound);
      }
      cli.io.stderr.write(`Forgot profile "${name}".\n`);
    });

  const profile = new Command('profile').description('List, show and switch profiles.');
  profile.addCommand(
    new Command('list').description('List the saved profiles.').action(() => {
      const cli = context();
      const file = cli.profiles.read();
      cli.print(Object.entries(file.profiles).map(([name, p]) => masked(name, p, name === file.current)));
    }),
  );
  profile.addCommand(
    new Command('show')
      .description('Show the profile commands use now, with the environment applied.')
      .action(() => {
        const cli = context();
        const resolved = cli.profiles.resolve(cli.options.profile, cli.io.env);
        cli.print(masked(resolved.name ?? '(environment)', resolved, true));
      }),
  );
  profile.addCommand(
    new Command('use')
      .description('Make a profile the current one.')
      .argument('<name>')
      .action((name) => {
        const cli = context();
        cli.profiles.use(name);
        cli.io.stderr.write(`Profile "${name}" is now current.\n`);
      }),
  );
  return [login, logout, profile];
}
