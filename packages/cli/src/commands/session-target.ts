/**
 * @module commands/session-target
 * The flags every session command takes to name its session (az's `-n`, `-g` and `--identifier`),
 * and the pool they name.
 */

import { Command } from '@commander-js/extra-typings';

import type { Context } from '../context.js';

export function sessionCommand(name: string, description: string) {
  return new Command(name)
    .description(description)
    .requiredOption('-n, --name <pool>', 'the session pool')
    .option('-g, --resource-group <group>', 'its resource group (default: the profile’s, else sandpool)')
    .requiredOption('-i, --identifier <identifier>', 'the session');
}

export const poolOf = (cli: Context, flags: { name: string; resourceGroup?: string }) =>
  cli.client(flags.resourceGroup).pool(flags.name);
