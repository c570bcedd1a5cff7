/**
 * @module api/schemas/processes
 * Background processes of a code-interpreter session (a Sandpool extension, no Azure counterpart):
 * start a command that keeps running after the request, list the session's processes, read their
 * output from an offset, write to their stdin, and signal them.
 */

import { Type } from 'typebox';

import { DataQuery, PoolEndpointParams, route } from './common.js';

const tag = 'Processes' as const;
const Query = Type.Object(DataQuery);
const ProcessParams = Type.Object({
  ...PoolEndpointParams.properties,
  pid: Type.String({ pattern: '^[1-9][0-9]{0,9}$', description: 'The process id `start` answered.' }),
});

/** Characters of a command line. */
export const MAX_COMMAND_CHARS = 65_536;
/** Characters of stdin one request may write. */
export const MAX_STDIN_CHARS = 1_048_576;
/** Characters of each stream one output request answers at most. */
export const MAX_OUTPUT_READ_CHARS = 1_000_000;
/** Characters of each stream an output request answers when it names no `maxChars`. */
export const DEFAULT_READ_CHARS = 100_000;

/** The signals a process may be sent (to its whole group). */
export const ProcessSignal = Type.Union(
  [Type.Literal('TERM'), Type.Literal('KILL'), Type.Literal('INT'), Type.Literal('HUP')],
  { description: 'Default TERM.' },
);

export const ProcessStart = Type.Object(
  {
    command: Type.String({
      minLength: 1,
      maxLength: MAX_COMMAND_CHARS,
      description:
        'A command line, run with `bash -c` (or `sh -c`) in /mnt/data, in a process group of its own.',
    }),
    shellType: Type.Optional(Type.Union([Type.Literal('bash'), Type.Literal('sh')])),
  },
  { $id: 'ProcessStart', additionalProperties: false },
);

export const Process = Type.Object(
  {
    pid: Type.Integer({ description: 'Its id inside the sandbox.' }),
    command: Type.String(),
    status: Type.Union([Type.Literal('Running'), Type.Literal('Exited')]),
    exitCode: Type.Union([Type.Integer(), Type.Null()], {
      description: 'Once it exited: its status, 128 + N when signal N ended it.',
    }),
    startedAt: Type.String(),
    endedAt: Type.Union([Type.String(), Type.Null()]),
  },
  { $id: 'Process' },
);

const OutputSlice = Type.Object({
  text: Type.String(),
  offset: Type.Integer({
    description:
      'Where `text` starts, in characters since the process started: the offset asked for, or the oldest kept (the newest 1,000,000 characters of a stream are kept).',
  }),
  nextOffset: Type.Integer({ description: 'The offset to ask from next.' }),
  length: Type.Integer({ description: 'Characters the process has written to the stream so far.' }),
});

export const ProcessOutput = Type.Object(
  {
    process: Type.Ref('Process'),
    stdout: OutputSlice,
    stderr: OutputSlice,
  },
  { $id: 'ProcessOutput' },
);

const offset = Type.Optional(Type.Integer({ minimum: 0, description: 'Default 0: from the start.' }));

export const processRoutes = {
  start: route({
    operationId: 'Processes_Start',
    access: { action: 'sessions/execute', on: 'pool' },
    session: 'creates',
    summary: 'Start a command in the background in the identifier’s session',
    description:
      'Answers at once with the process; it runs until it exits, is killed, or the session ends, within the session’s limits. At most 16 run at once in a session.',
    tag,
    audit: 'process.start',
    params: PoolEndpointParams,
    querystring: Query,
    body: Type.Ref('ProcessStart'),
    response: { 201: Type.Ref('Process') },
  }),
  list: route({
    operationId: 'Processes_List',
    access: { action: 'sessions/execute', on: 'pool' },
    session: 'creates',
    summary: 'List the session’s background processes, running and exited (the newest 64)',
    tag,
    params: PoolEndpointParams,
    querystring: Query,
    response: { 200: Type.Object({ value: Type.Array(Type.Ref('Process')) }) },
  }),
  output: route({
    operationId: 'Processes_Output',
    access: { action: 'sessions/execute', on: 'pool' },
    session: 'creates',
    summary: 'Read a background process’s output from an offset, and its state',
    description:
      'Once the process has exited, the answer holds everything it wrote up to `length`. Ask again from each stream’s `nextOffset` to follow it.',
    tag,
    params: ProcessParams,
    querystring: Type.Object({
      ...DataQuery,
      stdoutOffset: offset,
      stderrOffset: offset,
      maxChars: Type.Optional(
        Type.Integer({
          minimum: 1,
          maximum: MAX_OUTPUT_READ_CHARS,
          description: 'Most characters of each stream in the answer (default 100,000).',
        }),
      ),
    }),
    response: { 200: Type.Ref('ProcessOutput') },
  }),
  stdin: route({
    operationId: 'Processes_WriteStdin',
    access: { action: 'sessions/execute', on: 'pool' },
    session: 'creates',
    summary: 'Write to a background process’s stdin, and close it with `close`',
    description:
      '`409 ProcessStdinUnavailable` when the process has not read what was written within a second (what was written so far stays written), or its stdin is closed.',
    tag,
    audit: 'process.stdin',
    params: ProcessParams,
    querystring: Query,
    body: Type.Object(
      {
        text: Type.String({ maxLength: MAX_STDIN_CHARS }),
        close: Type.Optional(Type.Boolean({ description: 'Close stdin after the text (end of input).' })),
      },
      { additionalProperties: false },
    ),
    response: { 200: Type.Ref('Process') },
  }),
  kill: route({
    operationId: 'Processes_Kill',
    access: { action: 'sessions/execute', on: 'pool' },
    session: 'creates',
    summary: 'Send a signal to a background process and everything it started',
    tag,
    audit: 'process.kill',
    params: ProcessParams,
    querystring: Type.Object({
      ...DataQuery,
      signal: Type.Optional(ProcessSignal),
    }),
    response: { 200: Type.Ref('Process') },
  }),
};
