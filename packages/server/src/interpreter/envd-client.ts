/**
 * @module interpreter/envd-client
 * The host's end of a sandbox's envd agent (interpreter/python/envd.py, E2B's in-sandbox services):
 * JSON lines over a unix socket in the sandbox's agent directory, opened without following a link the
 * sandbox planted, many requests at once, each with an id. A request ends with its reply; a streaming
 * one sends events first and ends with `done` (or a failure), and {@link EnvdStream.cancel} stops it.
 * Everything the agent says is untrusted: lines are bounded, shapes checked, ids matched, and a
 * failure's code is passed on only if it is one of Connect's.
 */

import type { Socket } from 'node:net';

import { AppError, ErrorCode } from '../errors.js';
import { LineReader } from './line-reader.js';
import { connectWhenListening } from './agent-client.js';

const MAX_LINE_BYTES = 64 * 1024 * 1024;

/** The Connect codes the envd agent may refuse a request with (E2B's SDKs read them). */
export const ENVD_CODES = [
  'canceled',
  'invalid_argument',
  'not_found',
  'already_exists',
  'permission_denied',
  'resource_exhausted',
  'failed_precondition',
  'unimplemented',
  'internal',
  'unavailable',
] as const;
export type EnvdCode = (typeof ENVD_CODES)[number];

/** A request the envd agent refused, with its Connect code. */
export class EnvdRefusal extends Error {
  constructor(
    readonly code: EnvdCode,
    message: string,
  ) {
    super(message);
    this.name = 'EnvdRefusal';
  }
}

export type EnvdMessage = Record<string, unknown>;

/** A streaming request under way: its events, until it ends or is cancelled. */
export interface EnvdStream {
  /** Resolves once the stream ended (`done`), rejects on a failure or a lost connection. */
  readonly ended: Promise<void>;
  cancel(): void;
}

interface Pending {
  resolve: (reply: EnvdMessage) => void;
  reject: (error: Error) => void;
  onEvent?: (event: EnvdMessage) => void;
}

export class EnvdClient {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly lines = new LineReader(
    MAX_LINE_BYTES,
    (line) => this.onLine(line),
    () => {
      this.fail(new AppError(ErrorCode.AgentProtocolError, 'envd sent a line over 64 MiB'));
      this.socket.destroy();
    },
  );
  private closed: Error | undefined;

  private constructor(private readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => this.lines.push(chunk));
    socket.on('error', (error) =>
      this.fail(new AppError(ErrorCode.AgentUnavailable, `envd: ${error.message}`)),
    );
    socket.on('close', () =>
      this.fail(new AppError(ErrorCode.AgentUnavailable, 'envd closed its connection')),
    );
  }

  static async connect(socketPath: string, timeoutMs: number): Promise<EnvdClient> {
    return new EnvdClient(await connectWhenListening(socketPath, Date.now() + timeoutMs));
  }

  get isClosed(): boolean {
    return this.closed !== undefined;
  }

  /** Sends a request and resolves with its reply. */
  request(
    op: string,
    fields: EnvdMessage = {},
    onEvent?: (event: EnvdMessage) => void,
  ): Promise<EnvdMessage> {
    if (this.closed) return Promise.reject(this.closed);
    const id = this.nextId++;
    const reply = new Promise<EnvdMessage>((resolve, reject) => {
      this.pending.set(id, { resolve, reject, ...(onEvent && { onEvent }) });
    });
    this.socket.write(`${JSON.stringify({ ...fields, op, id })}\n`);
    return reply;
  }

  /** Sends a streaming request: `onEvent` hears each event until the stream ends. */
  stream(op: string, fields: EnvdMessage, onEvent: (event: EnvdMessage) => void): EnvdStream {
    const id = this.nextId;
    const ended = this.request(op, fields, onEvent).then(() => undefined);
    return {
      ended,
      cancel: () => {
        if (!this.pending.has(id)) return;
        this.pending.get(id)!.resolve({});
        this.pending.delete(id);
        if (!this.closed)
          this.socket.write(`${JSON.stringify({ op: 'cancel', target: id, id: this.nextId++ })}\n`);
      },
    };
  }

  close(): void {
    this.fail(new AppError(ErrorCode.AgentUnavailable, 'envd connection closed'));
    this.socket.destroy();
  }

  private fail(error: Error): void {
    if (this.closed) return;
    this.closed = error;
    for (const pending of this.pending.values()) pending.reject(error);
    this.pending.clear();
  }

  private onLine(line: string): void {
    let message: unknown;
    try {
      message = JSON.parse(line);
    } catch {
      this.fail(new AppError(ErrorCode.AgentProtocolError, 'envd sent a line that is not JSON'));
      this.socket.destroy();
      return;
    }
    if (typeof message !== 'object' || message === null || typeof (message as EnvdMessage).id !== 'number') {
      return;
    }
    const fields = message as EnvdMessage;
    const pending = this.pending.get(fields.id as number);
    if (!pending) return;
    if (fields.done === true) {
      this.pending.delete(fields.id as number);
      pending.resolve({});
    } else if (typeof fields.event === 'string') {
      pending.onEvent?.(fields);
    } else if (fields.ok === true) {
      this.pending.delete(fields.id as number);
      pending.resolve(fields);
    } else if (fields.ok === false) {
      this.pending.delete(fields.id as number);
      pending.reject(refusalOf(fields.error));
    }
  }
}

function refusalOf(error: unknown): Error {
  const given = (typeof error === 'object' && error !== null ? error : {}) as {
    code?: unknown;
    message?: unknown;
  };
  const code = ENVD_CODES.find((known) => known === given.code) ?? 'internal';
  const message =
    typeof given.message === 'string' ? given.message.slice(0, 4096) : 'envd refused the request';
  return new EnvdRefusal(code, message);
}
