/**
 * @module commands/serve
 * `sandpool serve [settings…]`: runs the Sandpool server in the foreground, with every setting flag
 * the server takes (`sandpool serve --help` lists them). The server stays its own package and
 * process; this command finds it, starts it and passes signals and the exit status through.
 */

import { spawn } from 'node:child_process';
import { constants } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { Command } from '@commander-js/extra-typings';

import { CliError, ExitCode } from '../failure.js';

function serverEntry(): string {
  try {
    return join(
      dirname(fileURLToPath(import.meta.resolve('@sandpool/server/package.json'))),
      'dist',
      'src',
      'main.js',
    );
  } catch {
    throw new CliError(
      'the Sandpool server is not installed beside this CLI',
      ExitCode.Failed,
      'Run `bash scripts/start.sh` from a checkout of Sandpool.',
    );
  }
}

export function serveCommand(setExitCode: (code: number) => void): Command {
  return new Command('serve')
    .description('Run the Sandpool server in the foreground (`sandpool serve --help` lists its settings).')
    .helpOption(false)
    .allowUnknownOption()
    .argument('[settings...]', 'server settings, e.g. --port 8443 --tls off')
    .action(async (settings) => {
      // The server runs compiled, as scripts/start.sh runs it.
      const child = spawn(process.execPath, [serverEntry(), ...settings], { stdio: 'inherit' });
      const forward = (signal: NodeJS.Signals) => child.kill(signal);
      process.on('SIGINT', forward).on('SIGTERM', forward);
      const code = await new Promise<number>((resolve) =>
        child.on('exit', (status, signal) =>
          resolve(status ?? 128 + (signal ? constants.signals[signal] : 0)),
        ),
      );
      process.off('SIGINT', forward).off('SIGTERM', forward);
      setExitCode(code);
    }) as unknown as Command;
}
