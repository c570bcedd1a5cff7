/**
 * @module commands/sessionpool
 * `sandpool sessionpool create|update|show|list|delete`, with the flags of `az containerapp
 * sessionpool`, and `events` (a Sandpool addition). Create, update and delete wait for the
 * long-running operation under a spinner unless `--no-wait`.
 */

import { Command, Option } from '@commander-js/extra-typings';
import type { PoolEvent, SessionPool } from '@sandpool/sdk';

import type { Context } from '../context.js';
import type { Columns } from '../output.js';
import { changesTemplate, createBody, updatePatch } from '../pool-flags.js';
import { collect, integer, number, pastTime } from './arguments.js';

/** What a pool's operation is doing now, for the spinner: a custom container's pull, or the warm set. */
function progressOf(pool: SessionPool): string {
  const pull = pool.properties.imageStatus?.pulling;
  if (pull) return `pulling ${pull.image} (${pull.stage})`;
  const status = pool.properties.sessionStatus;
  return status ? `${status.readySessionCount} ready, ${status.startingSessionCount} starting` : '';
}

export const POOL_COLUMNS: Columns<SessionPool> = [
  ['Name', (p) => p.name],
  ['Location', (p) => p.location],
  ['ContainerType', (p) => p.properties.containerType],
  ['MaxSessions', (p) => p.properties.scaleConfiguration?.maxConcurrentSessions],
  ['Ready', (p) => p.properties.sessionStatus?.readySessionCount],
  ['Allocated', (p) => p.properties.sessionStatus?.allocatedSessionCount],
  ['ProvisioningState', (p) => p.properties.provisioningState],
  [
    'Image',
    (p) =>
      p.properties.imageStatus &&
      `${p.properties.imageStatus.image}@${p.properties.imageStatus.digest ?? '(not pulled)'}`,
  ],
  ['Endpoint', (p) => p.properties.poolManagementEndpoint],
];

const EVENT_COLUMNS: Columns<PoolEvent> = [
  ['At', (e) => e.at],
  ['Type', (e) => e.type],
  ['Identifier', (e) => e.identifier],
  ['Reason', (e) => e.reason],
  ['Session', (e) => e.sessionId],
];

/** The configuration flags `create` and `update` share (update cannot change the container type). */
function withPoolFlags(command: ReturnType<typeof poolCommand>) {
  return command
    .option('--max-sessions <n>', 'sessions that may exist at once (default 10)', integer('--max-sessions'))
    .option('--ready-sessions <n>', 'prewarmed sandboxes kept ready (default 5)', integer('--ready-sessions'))
    .addOption(
      new Option('--lifecycle-type <type>', 'how sessions end').choices(['Timed', 'OnContainerExit']),
    )
    .option(
      '--cooldown-period <seconds>',
      'Timed: idle seconds before a session ends (default 300)',
      integer('--cooldown-period'),
    )
    .option(
      '--max-alive-period <seconds>',
      'OnContainerExit: the longest a session lives (default 3600)',
      integer('--max-alive-period'),
    )
    .addOption(
      new Option('--network-status <status>', 'egress from sessions').choices([
        'EgressEnabled',
        'EgressDisabled',
      ]),
    )
    .option('--cpu <cores>', 'cores per session, 0.25 to 2', number('--cpu'))
    .option('--memory <size>', 'memory per session, e.g. 0.5Gi')
    .option('-s, --secrets <name=value...>', 'secrets (write-only)', collect, undefined)
    .option(
      '--env-vars <name=value...>',
      'custom containers: env; name=secretref:<secret> reads a secret',
      collect,
      undefined,
    )
    .option('-i, --image <image>', 'custom containers: the image')
    .option('--container-name <name>', 'custom containers: the container’s name')
    .option('--command <args...>', 'custom containers: the command')
    .option('--args <args...>', 'custom containers: its arguments')
    .option(
      '--target-port <port>',
      'custom containers: the port the container serves',
      integer('--target-port'),
    )
    .option('--registry-server <server>', 'custom containers: the registry')
    .option('--registry-username <user>', 'custom containers: registry user')
    .option('--registry-password <password>', 'custom containers: registry password (kept as a secret)')
    .option('--tags <name=value...>', 'ARM tags, e.g. costCenter=edu', collect, undefined)
    .option(
      '--preload-modules <module...>',
      'PythonLTS: modules each interpreter imports before its session starts (default: numpy pandas where sandboxes are forked, none where each starts its own)',
    )
    .option('--no-wait', 'return once the server accepted the request');
}

function poolCommand(name: string, description: string) {
  return new Command(name)
    .description(description)
    .requiredOption('-n, --name <name>', 'the session pool')
    .option('-g, --resource-group <group>', 'its resource group (default: the profile’s, else sandpool)');
}

export function sessionPoolCommand(context: () => Context): Command {
  const command = new Command('sessionpool').description('Manage session pools.');

  command.addCommand(
    withPoolFlags(poolCommand('create', 'Create a session pool.'))
      .option('--location <location>', 'ARM location; a label here (default local)')
      .addOption(
        new Option('--container-type <type>', 'what sessions run (default PythonLTS)').choices([
          'PythonLTS',
          'Shell',
          'NodeLTS',
          'CustomContainer',
        ]),
      )
      .action(async (flags) => {
        const cli = context();
        const client = cli.client(flags.resourceGroup);
        const body = createBody(flags.name, flags);
        const pool = await cli.spin(`creating session pool ${flags.name}`, (progress) =>
          client.pools.createOrUpdate(flags.name, body, {
            wait: flags.wait,
            onProgress: (now) => progress(progressOf(now)),
          }),
        );
        cli.print(pool, POOL_COLUMNS);
      }),
  );

  command.addCommand(
    withPoolFlags(poolCommand('update', 'Update a session pool; only the settings given change.')).action(
      async (flags) => {
        const cli = context();
        const client = cli.client(flags.resourceGroup);
        // A custom container's template is replaced whole, so it is rebuilt from the pool as it is.
        const current =
          changesTemplate(flags) || flags.cpu !== undefined || flags.memory !== undefined
            ? await client.pools.get(flags.name)
            : undefined;
        const patch = updatePatch(flags, current);
        const pool = await cli.spin(`updating session pool ${flags.name}`, (progress) =>
          client.pools.update(flags.name, patch, {
            wait: flags.wait,
            onProgress: (now) => progress(progressOf(now)),
          }),
        );
        cli.print(pool, POOL_COLUMNS);
      },
    ),
  );

  command.addCommand(
    poolCommand('show', 'Show a session pool.').action(async (flags) => {
      const cli = context();
      cli.print(await cli.client(flags.resourceGroup).pools.get(flags.name), POOL_COLUMNS);
    }),
  );

  command.addCommand(
    new Command('list')
      .description('List session pools: of a resource group with -g, else of the whole subscription.')
      .option('-g, --resource-group <group>', 'only this resource group')
      .action(async (flags) => {
        const cli = context();
        const pools = await cli
          .client(flags.resourceGroup)
          .pools.list({ allResourceGroups: flags.resourceGroup === undefined });
        cli.print(pools, POOL_COLUMNS);
      }),
  );

  command.addCommand(
    poolCommand('delete', 'Delete a session pool; its sessions end.')
      .option('-y, --yes', 'accepted for az compatibility; the CLI does not prompt')
      .option('--no-wait', 'return once the server accepted the request')
      .action(async (flags) => {
        const cli = context();
        await cli.spin(`deleting session pool ${flags.name}`, () =>
          cli.client(flags.resourceGroup).pools.delete(flags.name, { wait: flags.wait }),
        );
      }),
  );
  command.addCommand(
    poolCommand(
      'events',
      'List a pool’s lifecycle events: ready, allocated, ended (with the reason), startFailed.',
    )
      .option('--type <types>', 'only these types, comma-separated (e.g. ended,startFailed)')
      .option('--identifier <identifier>', 'only this session')
      .option('--since <time>', 'ISO 8601 time or an age such as 1h', pastTime('--since'))
      .action(async (flags) => {
        const cli = context();
        const events = await cli.client(flags.resourceGroup).pools.events(flags.name, {
          ...(flags.type && { types: flags.type.split(',') }),
          ...(flags.identifier && { identifier: flags.identifier }),
          ...(flags.since && { since: flags.since }),
        });
        cli.print(events, EVENT_COLUMNS);
      }),
  );
  return command;
}
