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

export interface CodeError {
  name: string;
  message: string;
  traceback: string;
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

export type AgentReply = RunReply | PingReply | ProcessReply | FailureReply;

/** Output of a streamed request (`"stream": true`), sent as it is written, ahead of the reply. */
export interface OutputEvent {
  id: number;
  event: 'output';
  stream: 'stdout' | 'stderr';
  text: string;
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

export function parseAgentMessage(line: string): AgentReply | OutputEvent | ImageEvent {
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
  if (isRunReply(message)) return message as unknown as RunReply;
  if (isProcessReply(message)) return message as unknown as ProcessReply;
  throw new MalformedMessageError('agent reply has an unknown shape');
}
