/**
 * @module commands/completion
 * `sandpool completion bash|zsh`: a completion script generated from the command tree itself, so
 * every command, flag and flag choice completes, and a new one does without touching this file.
 *
 *   source <(sandpool completion bash)      # or put it in ~/.bashrc
 */

import { Command, type Option } from 'commander';

import { UsageError } from '../failure.js';

/** For every command path ("" for the top), the words that may follow it. */
function completions(root: Command): Map<string, string[]> {
  const table = new Map<string, string[]>();
  const walk = (command: Command, path: string) => {
    const options = (command.options as Option[])
      .flatMap((o) => [o.long, o.short])
      .filter(Boolean) as string[];
    table.set(path, [...command.commands.map((c) => c.name()), ...options, '--help']);
    for (const option of command.options as Option[]) {
      if (option.argChoices && option.long) table.set(`${path} ${option.long}`.trim(), option.argChoices);
    }
    for (const sub of command.commands) walk(sub, `${path} ${sub.name()}`.trim());
  };
  walk(root, '');
  return table;
}

const quote = (text: string) => `'${text.replace(/'/g, `'\\''`)}'`;

export function bashCompletion(root: Command): string {
  const entries = [...completions(root)].map(
    ([path, words]) => `    [${quote(path)}]=${quote(words.join(' '))}`,
  );
  return [
    '# sandpool completion for bash (and zsh through bashcompinit)',
    '_sandpool() {',
    '  local -A words=(',
    ...entries,
    '  )',
    '  local path="" word next cur="${COMP_WORDS[COMP_CWORD]}" prev="${COMP_WORDS[COMP_CWORD-1]}"',
    '  for word in "${COMP_WORDS[@]:1:COMP_CWORD-1}"; do',
    '    next="${path:+$path }$word"',
    '    [[ -n "${words[$next]+set}" && "$word" != -* ]] && path="$next"',
    '  done',
    '  local choices="${path:+$path }$prev"',
    '  if [[ "$prev" == -* && -n "${words[$choices]+set}" ]]; then',
    '    COMPREPLY=($(compgen -W "${words[$choices]}" -- "$cur"))',
    '  else',
    '    COMPREPLY=($(compgen -W "${words[$path]}" -- "$cur"))',
    '  fi',
    '}',
    'complete -F _sandpool sandpool',
    '',
  ].join('\n');
}

export function completionCommand(root: () => Command, print: (text: string) => void): Command {
  return new Command('completion')
    .description('Print a shell completion script: source <(sandpool completion bash)')
    .argument('<shell>', 'bash or zsh')
    .action((shell: string) => {
      if (shell === 'bash') print(bashCompletion(root()));
      else if (shell === 'zsh')
        print(`autoload -U +X bashcompinit && bashcompinit\n${bashCompletion(root())}`);
      else throw new UsageError(`completion is available for bash and zsh, not "${shell}"`);
    });
}
