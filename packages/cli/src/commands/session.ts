/**
 * @module commands/session
 * `sandpool session show|list|stop|logs` and `sandpool session code-interpreter …` (az's verbs), plus
 * `sandpool session shell execute` for Shell pools and `sandpool session process …` (process.ts).
 */

import { readFileSync } from 'node:fs';
import { basename } from 'node:path';

import { Command } from '@commander-js/extra-typings';
import type { ConsoleLog, Execution, FileInfo, SessionInfo, ShellExecution } from '@sandpool/sdk';

import type { Context } from '../context.js';
import { CliError, ExitCode, UsageError } from '../failure.js';
import type { Columns } from '../output.js';
import { integer, splitFilename, valueOrFile } from './arguments.js';
import { processCommand } from './process.js';
import { poolOf, sessionCommand } from './session-target.js';

const SESSION_COLUMNS: Columns<SessionInfo> = [
  ['Identifier', (s) => s.identifier],
  ['CreatedAt', (s) => s.createdAt],
  ['LastAccessedAt', (s) => s.lastAccessedAt],
  ['ExpireAt', (s) => s.expireAt],
];
const LOG_COLUMNS: Columns<ConsoleLog['lines'][number]> = [
  ['Time', (l) => l.time],
  ['Stream', (l) => l.stream],
  ['Text', (l) => l.text],
];
const FILE_COLUMNS: Columns<FileInfo> = [
  ['Name', (f) => f.name],
  ['Type', (f) => f.type],
  ['SizeInBytes', (f) => f.sizeInBytes],
  ['LastModifiedAt', (f) => f.lastModifiedAt],
  ['Directory', (f) => f.directory],
];
const EXECUTION_COLUMNS: Columns<Execution> = [
  ['Status', (e) => e.status],
  ['Result', (e) => e.result?.executionResult],
  ['Stdout', (e) => e.result?.stdout],
  ['Stderr', (e) => e.result?.stderr],
  ['Error', (e) => e.error?.code],
];
const SHELL_COLUMNS: Columns<ShellExecution> = [
  ['ExitCode', (e) => e.status],
  ['Stdout', (e) => e.result?.stdout],
  ['Stderr', (e) => e.result?.stderr],
  ['Error', (e) => e.error?.code],
];

/** `--live`: the run's output goes to this process's stdout and stderr as it is written. */
const liveOutput = (cli: Context) => ({
  onStdout: (text: string) => cli.io.stdout(text),
  onStderr: (text: string) => {
    cli.io.stderr.write(text);
  },
});

function codeInterpreterCommand(context: () => Context): Command {
  const command = new Command('code-interpreter').description('Run code and manage files in a session.');
  const session = (flags: { name: string; resourceGroup?: string; identifier: string }) => {
    const cli = context();
    return { cli, session: poolOf(cli, flags).session(flags.identifier) };
  };

  command.addCommand(
    sessionCommand(
      'execute',
      'Run code in the session (Python, or JavaScript in a NodeLTS pool); state persists across calls.',
    )
      .requiredOption('--code <code>', 'the code, or @file to read it from a file')
      .option('--timeout-in-seconds <n>', '1 to 220 (default 60, as az)', integer('--timeout-in-seconds'), 60)
      .option('--live', 'print stdout and stderr as the code writes them, then the result')
      .action(async (flags) => {
        const { cli, session: target } = session(flags);
        cli.print(
          await target.execute(valueOrFile(flags.code), {
            timeoutInSeconds: flags.timeoutInSeconds,
            ...(flags.live && liveOutput(cli)),
          }),
          EXECUTION_COLUMNS,
        );
      }),
  );

  command.addCommand(
    sessionCommand('upload-file', 'Upload a local file into /mnt/data.')
      .requiredOption('--filepath <file>', 'the local file')
      .option('--path <dir>', 'a directory under /mnt/data')
      .action(async (flags) => {
        const { cli, session: target } = session(flags);
        let content: Buffer;
        try {
          content = readFileSync(flags.filepath);
        } catch (error) {
          throw new UsageError(`cannot read ${flags.filepath}: ${(error as Error).message}`);
        }
        const file = await cli.spin(`uploading ${basename(flags.filepath)}`, () =>
          target.files.upload(
            basename(flags.filepath),
            content,
            flags.path === undefined ? {} : { path: flags.path },
          ),
        );
        cli.print(file, FILE_COLUMNS);
      }),
  );

  command.addCommand(
    sessionCommand('list-files', 'List the files in /mnt/data.')
      .option('--path <dir>', 'a directory under /mnt/data')
      .action(async (flags) => {
        const { cli, session: target } = session(flags);
        cli.print(
          await target.files.list(flags.path === undefined ? {} : { path: flags.path }),
          FILE_COLUMNS,
        );
      }),
  );

  command.addCommand(
    sessionCommand('show-file-content', 'Write a file’s content to stdout.')
      .requiredOption('--filename <name>', 'the file (dir/name works too)')
      .option('--path <dir>', 'a directory under /mnt/data')
      .action(async (flags) => {
        const { cli, session: target } = session(flags);
        const { name, path } = splitFilename(flags.filename, flags.path);
        cli.io.stdout(await target.files.download(name, path === undefined ? {} : { path }));
      }),
  );

  command.addCommand(
    sessionCommand('show-file-metadata', 'Show a file’s metadata.')
      .requiredOption('--filename <name>', 'the file (dir/name works too)')
      .option('--path <dir>', 'a directory under /mnt/data')
      .action(async (flags) => {
        const { cli, session: target } = session(flags);
        const { name, path } = splitFilename(flags.filename, flags.path);
        cli.print(await target.files.get(name, path === undefined ? {} : { path }), FILE_COLUMNS);
      }),
  );

  command.addCommand(
    sessionCommand('delete-file', 'Delete a file (or an empty directory).')
      .requiredOption('--filename <name>', 'the file (dir/name works too)')
      .option('--path <dir>', 'a directory under /mnt/data')
      .action(async (flags) => {
        const { session: target } = session(flags);
        const { name, path } = splitFilename(flags.filename, flags.path);
        await target.files.delete(name, path === undefined ? {} : { path });
      }),
  );
  return command;
}

function shellCommand(context: () => Context): Command {
  return new Command('shell').description('Run command lines in a Shell pool’s session.').addCommand(
    sessionCommand('execute', 'Run a command line with bash in /mnt/data; files persist across calls.')
      .requiredOption('--command <command>', 'the command line, or @file to read it from a file')
      .option('--shell-type <shell>', 'bash (default) or sh')
      .option('--timeout-in-seconds <n>', '1 to 220 (default 180)', integer('--timeout-in-seconds'))
      .option('--live', 'print stdout and stderr as the command writes them, then the result')
      .action(async (flags) => {
        const cli = context();
        if (flags.shellType !== undefined && flags.shellType !== 'bash' && flags.shellType !== 'sh') {
          throw new UsageError('--shell-type must be bash or sh');
        }
        const run = await poolOf(cli, flags)
          .session(flags.identifier)
          .run(valueOrFile(flags.command), {
            ...(flags.shellType && { shellType: flags.shellType }),
            ...(flags.timeoutInSeconds !== undefined && { timeoutInSeconds: flags.timeoutInSeconds }),
            ...(flags.live && liveOutput(cli)),
          });
        cli.print(run, SHELL_COLUMNS);
      }),
  );
}

export function sessionCommandGroup(context: () => Context): Command {
  const command = new Command('session').description('Manage sessions and run code in them.');

  command.addCommand(
    sessionCommand('show', 'Show a live session.').action(async (flags) => {
      const cli = context();
      const info = await poolOf(cli, flags).session(flags.identifier).info();
      if (!info) {
        throw new CliError(
          `no live session has the identifier "${flags.identifier}"`,
          ExitCode.NotFound,
          'List live sessions with `sandpool session list -n <pool>`.',
        );
      }
      cli.print(info, SESSION_COLUMNS);
    }),
  );
  command.addCommand(
    new Command('list')
      .description('List the live sessions of a pool, oldest first.')
      .requiredOption('-n, --name <pool>', 'the session pool')
      .option('-g, --resource-group <group>', 'its resource group')
      .action(async (flags) => {
        const cli = context();
        cli.print(await poolOf(cli, flags).sessions(), SESSION_COLUMNS);
      }),
  );
  command.addCommand(
    sessionCommand('stop', 'End a session now and free its slot.').action(async (flags) => {
      const cli = context();
      await poolOf(cli, flags).session(flags.identifier).stop();
    }),
  );
  command.addCommand(
    sessionCommand(
      'logs',
      'Show a custom container session’s console output (its live session, else its last).',
    )
      .option('--tail <n>', 'the last n lines (default 200)', integer('--tail'))
      .action(async (flags) => {
        const cli = context();
        const logs = await poolOf(cli, flags)
          .session(flags.identifier)
          .logs(flags.tail === undefined ? {} : { tail: flags.tail });
        cli.print(logs.lines, LOG_COLUMNS);
      }),
  );
  command.addCommand(codeInterpreterCommand(context));
  command.addCommand(shellCommand(context));
  command.addCommand(processCommand(context));
  return command;
}
