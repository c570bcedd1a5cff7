/**
 * @module main
 * The `sandpool` program: az-shaped commands over the SDK. {@link main} takes its I/O and environment
 * as arguments and returns the exit code, so tests run the whole CLI in process; bin/sandpool.js
 * wires it to the real process.
 */

import { Command, CommanderError, Option } from '@commander-js/extra-typings';

import { auditCommand } from './commands/audit.js';
import { completionCommand } from './commands/completion.js';
import { doctorCommand } from './commands/doctor.js';
import { loginCommands } from './commands/login.js';
import { nodeCommand } from './commands/node.js';
import { serveCommand } from './commands/serve.js';
import { sessionCommandGroup } from './commands/session.js';
import { sessionPoolCommand } from './commands/sessionpool.js';
import { tokenCommand } from './commands/token.js';
import { usageCommand } from './commands/usage.js';
import { Context, type CliIo } from './context.js';
import { describeFailure, ExitCode } from './failure.js';
import { FORMATS } from './output.js';

export const VERSION = '0.1.0';

function program(io: CliIo, setExitCode: (code: number) => void): Command {
  const root = new Command('sandpool')
    .description('Session pools and sessions on a Sandpool (or Azure dynamic sessions) endpoint.')
    .version(VERSION)
    .addOption(new Option('-o, --output <format>', 'output format').choices(FORMATS).default('json' as const))
    .option('--profile <name>', 'use this saved profile (see `sandpool profile list`)')
    .option('--subscription <id>', 'the subscription of the pools (default: the profile’s)')
    .showSuggestionAfterError()
    .exitOverride()
    .configureOutput({
      writeOut: (text) => io.stdout(text),
      writeErr: (text) => io.stderr.write(text),
    });
  const context = () => {
    const options = root.opts();
    return new Context(io, {
      output: options.output,
      outputChosen: root.getOptionValueSource('output') !== 'default',
      ...(options.profile !== undefined && { profile: options.profile }),
      ...(options.subscription !== undefined && { subscription: options.subscription }),
    });
  };
  const commands = [
    sessionPoolCommand(context),
    sessionCommandGroup(context),
    tokenCommand(context),
    auditCommand(context),
    usageCommand(context),
    nodeCommand(context),
    doctorCommand(context, setExitCode),
    ...loginCommands(context),
    serveCommand(setExitCode),
    completionCommand(
      () => root as unknown as import('commander').Command,
      (text) => io.stdout(text),
    ),
  ];
  for (const command of commands) root.addCommand(command as never);
  // Every subcommand reports usage errors the same way and never exits the process itself.
  const configure = (command: Command) => {
    command.exitOverride().showSuggestionAfterError();
    command.configureOutput({
      writeOut: (text) => io.stdout(text),
      writeErr: (text) => io.stderr.write(text),
    });
    for (const sub of command.commands as Command[]) configure(sub);
  };
  for (const sub of root.commands as Command[]) configure(sub);
  return root;
}

/** Runs the CLI with `args` (without node and the script) and returns the exit code. */
export async function main(args: string[], io: CliIo): Promise<number> {
  let exitCode: number = ExitCode.Ok;
  try {
    await program(io, (code) => (exitCode = code)).parseAsync(args, { from: 'user' });
    return exitCode;
  } catch (error) {
    if (error instanceof CommanderError) {
      // Help and --version end the run successfully; anything else is a usage error, already printed.
      return error.exitCode === 0 ? ExitCode.Ok : ExitCode.Usage;
    }
    const failure = describeFailure(error);
    io.stderr.write(`error: ${failure.message}\n`);
    if (failure.hint) io.stderr.write(`hint: ${failure.hint}\n`);
    return failure.exitCode;
  }
}
