/**
 * @module commands/token
 * `sandpool token create|list|revoke`. A token is an API key (long-lived, listed, revocable) unless
 * `--expires-in` asks for a short-lived signed token, which cannot be listed or revoked: it expires.
 */

import { Command } from '@commander-js/extra-typings';
import type { ApiKey } from '@sandpool/sdk';

import type { Context } from '../context.js';
import type { Columns } from '../output.js';
import { collect, integer } from './arguments.js';

const KEY_COLUMNS: Columns<ApiKey> = [
  ['Id', (k) => k.id],
  ['Name', (k) => k.name],
  ['Roles', (k) => k.roles.join(' ')],
  ['CreatedAt', (k) => k.createdAt],
  ['RevokedAt', (k) => k.revokedAt],
];

export function tokenCommand(context: () => Context): Command {
  const command = new Command('token').description('Create, list and revoke credentials.');
  command.addCommand(
    new Command('create')
      .description('Create an API key, or with --expires-in a short-lived token; the secret is shown once.')
      .requiredOption(
        '--roles <role...>',
        'SessionExecutor, Contributor or Reader, each optionally :<ARM id> of a subscription, resource group or pool (e.g. SessionExecutor:/subscriptions/<guid>/resourceGroups/sandpool)',
        collect,
        undefined,
      )
      .option('--name <name>', 'a label for the key')
      .option(
        '--expires-in <seconds>',
        'a signed token valid this long (60 to 86400) instead of a key',
        integer('--expires-in'),
      )
      .action(async (flags) => {
        const cli = context();
        const client = cli.client();
        const roles = flags.roles ?? [];
        if (flags.expiresIn !== undefined) {
          cli.print(await client.tokens.create({ roles, expiresInSeconds: flags.expiresIn }));
          return;
        }
        const key = await client.keys.create({ roles, ...(flags.name && { name: flags.name }) });
        cli.print(key, [...KEY_COLUMNS, ['Key', (k) => k.key]]);
      }),
  );
  command.addCommand(
    new Command('list').description('List API keys (never their secrets).').action(async () => {
      const cli = context();
      cli.print(await cli.client().keys.list(), KEY_COLUMNS);
    }),
  );
  command.addCommand(
    new Command('revoke')
      .description('Revoke an API key; requests with it fail from now on.')
      .argument('<id>', 'the key’s id (the part after sp_)')
      .action(async (id) => {
        const cli = context();
        cli.print(await cli.client().keys.revoke(id), KEY_COLUMNS);
      }),
  );
  return command;
}
