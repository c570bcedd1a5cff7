/**
 * @module commands/process
 * `sandpool session process start|list|output|write|kill`: commands a session runs in the background
 * (Sandpool's extension), such as a dev server or a long job. `output --follow` prints what the
 * process writes until it exits.
 */

import { Command } from '@commander-js/extra-typings';
import type { BackgroundProcess } from '@sandpool/sdk';

import type { Context } from '../context.js';
import { UsageError } from '../failure.js';
import type { Columns } from '../output.js';
import { integer, valueOrFile } from './arguments.js';
import { poolOf, sessionCommand } from './session-target.js';

const PROCESS_COLUMNS: Columns<BackgroundProcess> = [
  ['Pid', (p) => p.pid],
  ['Status', (p) => p.status],
  ['ExitCode', (p) => p.exitCode],
  ['StartedAt', (p) => p.startedAt],
  ['Command', (p) => p.command],
];
const SIGNALS = ['TERM', 'KILL', 'INT', 'HUP'] as const;
/** How often `output --follow` asks for more. */
const FOLLOW_INTERVAL_MS = 250;

/** A command about one process: the session's flags and `--pid`. */
const oneProcessCommand = (name: string, description: string) =>
  sessionCommand(name, description).requiredOption(
    '--pid <pid>',
    'the process id `start` printed',
    integer('--pid'),
  );

export function processCommand(context: () => Context): Command {
  const command = new Command('process').description(
    'Run commands in the background of a session: dev servers, long jobs (a Sandpool extension).',
  );
  const processesOf = (flags: { name: string; resourceGroup?: string; identifier: string }) => {
    const cli = context();
    return { cli, processes: poolOf(cli, flags).session(flags.identifier).processes };
  };

  command.addCommand(
    sessionCommand(
      'start',
      'Start a command line with bash in /mnt/data; it keeps running after this returns.',
    )
      .requiredOption('--command <command>', 'the command line, or @file to read it from a file')
      .option('--shell-type <shell>', 'bash (default) or sh')
      .action(async (flags) => {
        const { cli, processes } = processesOf(flags);
        if (flags.shellType !== undefined && flags.shellType !== 'bash' && flags.shellType !== 'sh') {
          throw new UsageError('--shell-type must be bash or sh');
        }
        cli.print(
          await processes.start(valueOrFile(flags.command), {
            ...(flags.shellType && { shellType: flags.shellType }),
          }),
          PROCESS_COLUMNS,
        );
      }),
  );

  command.addCommand(
    sessionCommand('list', 'List the session’s background processes, running and exited.').action(
      async (flags) => {
        const { cli, processes } = processesOf(flags);
        cli.print(await processes.list(), PROCESS_COLUMNS);
      },
    ),
  );

  command.addCommand(
    oneProcessCommand('output', 'Print what a process wrote: stdout to stdout, stderr to stderr.')
      .option('--follow', 'keep printing what it writes until it exits')
      .action(async (flags) => {
        const { cli, processes } = processesOf(flags);
        let stdoutOffset = 0;
        let stderrOffset = 0;
        for (;;) {
          const output = await processes.output(flags.pid, { stdoutOffset, stderrOffset });
          cli.io.stdout(output.stdout.text);
          cli.io.stderr.write(output.stderr.text);
          stdoutOffset = output.stdout.nextOffset;
          stderrOffset = output.stderr.nextOffset;
          const more =
            output.stdout.nextOffset < output.stdout.length ||
            output.stderr.nextOffset < output.stderr.length;
          if (more) continue;
          if (!flags.follow || output.process.status === 'Exited') return;
          await new Promise((resolve) => setTimeout(resolve, FOLLOW_INTERVAL_MS));
        }
      }),
  );

  command.addCommand(
    oneProcessCommand('write', 'Write to a process’s stdin.')
      .requiredOption('--text <text>', 'what to write, or @file to read it from a file')
      .option('--close', 'close its stdin afterwards (end of input)')
      .action(async (flags) => {
        const { cli, processes } = processesOf(flags);
        cli.print(
          await processes.write(flags.pid, valueOrFile(flags.text), { close: flags.close === true }),
          PROCESS_COLUMNS,
        );
      }),
  );

  command.addCommand(
    oneProcessCommand('kill', 'Signal a process and everything it started.')
      .option('--signal <signal>', `${SIGNALS.join(', ')} (default TERM)`)
      .action(async (flags) => {
        const { cli, processes } = processesOf(flags);
        const signal = flags.signal?.toUpperCase();
        if (signal !== undefined && !SIGNALS.includes(signal as (typeof SIGNALS)[number])) {
          throw new UsageError(`--signal must be one of ${SIGNALS.join(', ')}`);
        }
        cli.print(
          await processes.kill(flags.pid, signal as (typeof SIGNALS)[number] | undefined),
          PROCESS_COLUMNS,
        );
      }),
  );
  return command;
}
