/**
 * @module commands/node
 * `sandpool node list` and `sandpool node drain <name>`: the server processes sharing a store, and
 * taking one out of service for maintenance (what a Kubernetes preStop hook runs).
 */

import { Command } from '@commander-js/extra-typings';
import type { NodeInfo } from '@sandpool/sdk';

import type { Context } from '../context.js';
import type { Columns } from '../output.js';

const NODE_COLUMNS: Columns<NodeInfo> = [
  ['Name', (n) => n.name],
  ['Url', (n) => n.url],
  ['Live', (n) => n.live],
  ['Draining', (n) => n.draining],
  ['Drained', (n) => n.drained],
  ['Sessions', (n) => n.load.sessions],
  ['Ready', (n) => n.load.ready],
  ['Leader', (n) => n.leader ?? ''],
  ['LeaseUntil', (n) => n.leaseUntil],
];

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export function nodeCommand(context: () => Context): Command {
  return new Command('node')
    .description('The nodes sharing this server’s store.')
    .addCommand(
      new Command('list')
        .description('List the nodes (needs Reader or Contributor on every pool).')
        .action(async () => {
          const cli = context();
          cli.print(await cli.client().nodes.list(), NODE_COLUMNS);
        }),
    )
    .addCommand(
      new Command('drain')
        .description(
          'Drain a node (sign in to that node): no new sessions or ready sandboxes; its sessions run to their end.',
        )
        .argument('<name>', 'the node, as `sandpool node list` shows it')
        .option('--wait', 'wait until the node reports drained')
        .action(async (name, flags) => {
          const cli = context();
          const client = cli.client();
          let node = await client.nodes.drain(name);
          while (flags.wait && !node.drained) {
            await sleep(1000);
            node = (await client.nodes.list()).find((n) => n.name === name) ?? node;
          }
          cli.print(node, NODE_COLUMNS);
        }),
    );
}
