/**
 * @module interpreter/protocol
 * Types of the host↔agent protocol; interpreter/PROTOCOL.md is the normative description.
 * Everything an agent sends is untrusted (the sandbox's code can write to the socket), so
 * {@link parseAgentMessage} checks each message's shape before anyone reads it.
 */

export const PROTOCOL_VERSION = 1;

export interface AgentHello {
  op: 'hello';
  protocol: number;
  pid: number;
  python?: string;
}

export interface ImageOutput {
  type: 'image';
  format: 'png';
  base64_data: string;
}

/** The agent started (or had) E2B's envd agent beside it: its socket's name in the agent's directory. */
export interface EnvdStartReply {
  id: number;
  ok: true;
  socket: string;
}

export interface CodeError {
  name: string;
  message: string;
  traceback: string;
}

/**
 * A value as a notebook displays it, in E2B's shape (interpreter/python/rich_output.py): `text`,
 * the `_repr_*_` representations it offers (`html`, `png`, …), E2B's `data` and `chart`.
 */
export interface RichResult {
  type: 'result';
  /** The cell's last expression, rather than something it displayed. */
  is_main_result: boolean;
  [representation: string]: unknown;
}

/** One of a session's contexts (E2B's): a namespace with its own working directory. */
export interface ContextInfo {
  id: string;
  language: string;
  cwd: string;
}

export type ContextRequest =
  | { op: 'context.create'; language: string; cwd?: string }
  | { op: 'context.list' }
  | { op: 'context.restart'; context: string }
  | { op: 'context.remove'; context: string };

/** The answer to a context request: the one it made or restarted, or all that are left. */
export interface ContextReply {
  id: number;
  ok: true;
  context?: ContextInfo;
  contexts?: ContextInfo[];
}

export interface RunReply {
  id: number;
  ok: true;
  status: 'succeeded' | 'failed';
  interrupted: boolean;
  stdout: string;
  stderr: string;
  stdoutTruncated: boolean;
  stderrTruncated: boolean;
  /** The value of the last expression: a JSON primitive, or the repr of anything else. */
  result: string | number | boolean | null;
  images: ImageOutput[];
  error: CodeError | null;
  /** A `shell` command's exit status (null when it was interrupted or did not start); absent for Python. */
  exitCode?: number | null;
  /** A run in a context: what it displayed, showed and its value, in order (then `result` is null). */
  results?: RichResult[];
  /** A run in a context: how many runs the context has had, this one included. */
  executionCount?: number;
  durationMs: number;
}

export interface PingReply {
  id: number;
  ok: true;
  executions: number;
}

export interface FailureReply {
  id: number | null;
  ok: false;
  error: { code: string; message: string };
}

/** A background process as the agent describes it (times in seconds since the epoch). */
export interface ProcessInfo {
  pid: number;
  command: string;
  running: boolean;
  /** The exit status once it ended; 128 + N when signal N ended it. */
  exitCode: number | null;
  startedAt: number;
  endedAt: number | null;
}

/** Part of one output stream of a background process; offsets count characters from its start. */
export interface OutputSlice {
  /** Where `text` starts: the offset asked for, or the oldest kept when older output was dropped. */
  from: number;
  text: string;
  /** The offset to ask from next. */
  next: number;
  /** How much the process has written so far. */
  end: number;
}

export type ProcessRequest =
  | { op: 'process.start'; command: string; shell: 'bash' | 'sh' }
  | { op: 'process.list' }
  | { op: 'process.output'; pid: number; stdoutOffset: number; stderrOffset: number; maxChars: number }
  | { op: 'process.stdin'; pid: number; text: string; close: boolean }
  | { op: 'process.kill'; pid: number; signal: ProcessSignal };

export type ProcessSignal = 'TERM' | 'KILL' | 'INT' | 'HUP';

/** The answer to a process request: one process (with its output for `process.output`), or all. */
export interface ProcessReply {
  id: number;
  ok: true;
  process?: ProcessInfo;
  processes?: ProcessInfo[];
  stdout?: OutputSlice;
  stderr?: OutputSlice;
}

export type AgentReply = RunReply | PingReply | ProcessReply | ContextReply | EnvdStartReply | FailureReply;

/** Output of a streamed request (`"stream": true`), sent as it is written, ahead of the reply. */
export interface OutputEvent {
  id: number;
  event: 'output';
  stream: 'stdout' | 'stderr';
  text: string;
}

/** A rich result a streamed run in a context displayed or showed, sent then, ahead of the reply. */
export interface ResultEvent {
  id: number;
  event: 'result';
  result: RichResult;
}

/** An image a streamed request's code showed (`plt.show()`), sent then, ahead of the reply. */
export interface ImageEvent {
  id: number;
  event: 'image';
  image: ImageOutput;
}

export class MalformedMessageError extends Error {}

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isImage(value: unknown): value is ImageOutput {
  return (
    isObject(value) &&
    value.type === 'image' &&
    value.format === 'png' &&
    typeof value.base64_data === 'string'
  );
}

function isCodeError(value: unknown): value is CodeError {
  return (
    isObject(value) &&
    typeof value.name === 'string' &&
    typeof value.message === 'string' &&
    typeof value.traceback === 'string'
  );
}

function isRichResult(value: unknown): value is RichResult {
  return isObject(value) && value.type === 'result' && typeof value.is_main_result === 'boolean';
}

function isContextInfo(value: unknown): value is ContextInfo {
  return (
    isObject(value) &&
    typeof value.id === 'string' &&
    typeof value.language === 'string' &&
    typeof value.cwd === 'string'
  );
}

function isContextReply(m: Json): boolean {
  if ('contexts' in m) return Array.isArray(m.contexts) && m.contexts.every(isContextInfo);
  return isContextInfo(m.context);
}

function isRunReply(m: Json): boolean {
  return (
    (m.status === 'succeeded' || m.status === 'failed') &&
    typeof m.interrupted === 'boolean' &&
    typeof m.stdout === 'string' &&
    typeof m.stderr === 'string' &&
    typeof m.stdoutTruncated === 'boolean' &&
    typeof m.stderrTruncated === 'boolean' &&
    (m.result === null || ['string', 'number', 'boolean'].includes(typeof m.result)) &&
    Array.isArray(m.images) &&
    m.images.every(isImage) &&
    (m.error === null || isCodeError(m.error)) &&
    (m.exitCode === undefined || m.exitCode === null || Number.isInteger(m.exitCode)) &&
    (m.results === undefined || (Array.isArray(m.results) && m.results.every(isRichResult))) &&
    (m.executionCount === undefined || Number.isInteger(m.executionCount)) &&
    typeof m.durationMs === 'number'
  );
}

/** Seconds since the epoch that a Date can hold (and a process can have started at). */
const isEpochSeconds = (value: unknown) => typeof value === 'number' && value >= 0 && value < 1e11;

function isProcessInfo(value: unknown): value is ProcessInfo {
  return (
    isObject(value) &&
    Number.isInteger(value.pid) &&
    typeof value.command === 'string' &&
    typeof value.running === 'boolean' &&
    (value.exitCode === null || Number.isInteger(value.exitCode)) &&
    isEpochSeconds(value.startedAt) &&
    (value.endedAt === null || isEpochSeconds(value.endedAt))
  );
}

function isOutputSlice(value: unknown): value is OutputSlice {
  return (
    isObject(value) &&
    Number.isInteger(value.from) &&
    typeof value.text === 'string' &&
    Number.isInteger(value.next) &&
    Number.isInteger(value.end)
  );
}

function isProcessReply(m: Json): boolean {
  if ('processes' in m) return Array.isArray(m.processes) && m.processes.every(isProcessInfo);
  return (
    isProcessInfo(m.process) &&
    ('stdout' in m ? isOutputSlice(m.stdout) && isOutputSlice(m.stderr) : !('stderr' in m))
  );
}

export function parseHello(line: string): AgentHello {
  const message: unknown = JSON.parse(line);
  if (
    !isObject(message) ||
    message.op !== 'hello' ||
    typeof message.protocol !== 'number' ||
    typeof message.pid !== 'number'
  ) {
    throw new MalformedMessageError('the agent did not greet with a hello message');
  }
  if (message.protocol !== PROTOCOL_VERSION) {
    throw new MalformedMessageError(
      `agent speaks protocol ${message.protocol}, the host ${PROTOCOL_VERSION}`,
    );
  }
  return message as unknown as AgentHello;
}

export function parseAgentMessage(line: string): AgentReply | OutputEvent | ImageEvent | ResultEvent {
  let message: unknown;
  try {
    message = JSON.parse(line);
  } catch (cause) {
    throw new MalformedMessageError('agent sent a line that is not JSON', { cause });
  }
  if (isObject(message) && 'event' in message) {
    if (message.event === 'image') {
      if (typeof message.id !== 'number' || !isImage(message.image)) {
        throw new MalformedMessageError('agent image event lacks its id or image');
      }
      return message as unknown as ImageEvent;
    }
    if (message.event === 'result') {
      if (typeof message.id !== 'number' || !isRichResult(message.result)) {
        throw new MalformedMessageError('agent result event lacks its id or result');
      }
      return message as unknown as ResultEvent;
    }
    if (
      message.event !== 'output' ||
      typeof message.id !== 'number' ||
      (message.stream !== 'stdout' && message.stream !== 'stderr') ||
      typeof message.text !== 'string'
    ) {
      throw new MalformedMessageError('agent event is not an output event');
    }
    return message as unknown as OutputEvent;
  }
  if (
    !isObject(message) ||
    typeof message.ok !== 'boolean' ||
    !(typeof message.id === 'number' || message.id === null)
  ) {
    throw new MalformedMessageError('agent reply lacks id or ok');
  }
  if (!message.ok) {
    const error = message.error;
    if (!isObject(error) || typeof error.code !== 'string' || typeof error.message !== 'string') {
      throw new MalformedMessageError('agent failure reply lacks error.code or error.message');
    }
    return message as unknown as FailureReply;
  }
  if (typeof message.executions === 'number') return message as unknown as PingReply;
  if (typeof message.socket === 'string') return message as unknown as EnvdStartReply;
  if (isRunReply(message)) return message as unknown as RunReply;
  if (isContextReply(message)) return message as unknown as ContextReply;
  if (isProcessReply(message)) return message as unknown as ProcessReply;
  throw new MalformedMessageError('agent reply has an unknown shape');
}
