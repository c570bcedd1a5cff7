/**
 * @module interpreter/agent-client
 * The host's end of one agent connection: JSON lines over the unix socket the agent created in the
 * sandbox's state directory. Time limits are enforced here, not trusted to the agent: when an
 * execution overruns, the client interrupts it (SIGINT through {@link AgentControl}), and if the agent
 * does not answer within the grace period, kills the sandbox and reports the session lost.
 */

import { closeSync, constants as fsConstants, fstatSync, lstatSync, openSync } from 'node:fs';
import { connect, type Socket } from 'node:net';

import { AppError, ErrorCode } from '../errors.js';
import { LineReader } from './line-reader.js';
import {
  MalformedMessageError,
  parseAgentMessage,
  parseHello,
  type OutputEvent,
  type ImageEvent,
  type ResultEvent,
  type ImageOutput,
  type AgentHello,
  type AgentReply,
  type RunReply,
  type PingReply,
  type FailureReply,
  type ProcessReply,
  type ProcessRequest,
  type ContextReply,
  type ContextRequest,
  type RichResult,
} from './protocol.js';

/** Linux's O_PATH: opens a name without following or reading it (Node does not export the flag). */
const O_PATH = 0o10000000;
const MAX_LINE_BYTES = 64 * 1024 * 1024;
const POLL_MS = 2;

/** How the client reaches the process behind the socket when words are not enough. */
export interface AgentControl {
  interrupt(): Promise<void>;
  kill(): Promise<void>;
}

/**
 * `python` and `javascript` run in the interpreter's persistent namespace (the agent of the pool's
 * image speaks one of them); `bash` and `sh` run one command line.
 */
export type Language = 'python' | 'javascript' | 'bash' | 'sh';

export interface AgentRequest {
  code: string;
  /** Default `python`. */
  language?: Language;
  /** Wall-clock limit; on expiry the code is interrupted. */
  timeoutMs: number;
  /** stdout and stderr are each cut to this many characters. */
  maxOutputChars: number;
  /** Streams the run's output (within `maxOutputChars`) as it is written, ahead of the result. */
  onOutput?: (stream: 'stdout' | 'stderr', text: string) => void;
  /** Called with each image the code shows while it runs (`plt.show()`); the reply has them too. */
  onImage?: (image: ImageOutput) => void;
  /**
   * Runs the code in this context of the session (E2B's), which answers rich results; the default
   * context (`default`) shares the namespace of runs without one.
   */
  context?: string;
  /** Environment variables set for this run alone (runs in a context). */
  env?: Record<string, string>;
  /** Called with each rich result a run in a context displays or shows while it runs; the reply has them too. */
  onResult?: (result: RichResult) => void;
  /** Interrupts the run when it aborts (a client that left), as the time limit does. */
  signal?: AbortSignal;
}

export interface AgentResult extends RunReply {
  /** The time limit ran out and the code was interrupted. */
  timedOut: boolean;
}

export interface AgentClientOptions {
  /** How long to wait for the agent's socket to appear and greet. */
  connectTimeoutMs: number;
  /** After an interrupt, how long the agent has to answer before the sandbox is killed. */
  interruptGraceMs: number;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Connects without following a symlink at the socket's name: the directory belongs to the sandbox,
 * which could otherwise point the host at any socket on the host.
 */
function connectNoFollow(path: string): Socket {
  const fd = openSync(path, O_PATH | fsConstants.O_NOFOLLOW);
  try {
    if (!fstatSync(fd).isSocket()) {
      throw new AppError(ErrorCode.AgentProtocolError, `${path} is not a socket`);
    }
    return connect(`/proc/self/fd/${fd}`);
  } finally {
    // connect() resolves the path synchronously in libuv; the descriptor is not needed afterwards.
    setImmediate(() => closeSync(fd));
  }
}

async function waitForSocket(path: string, deadline: number): Promise<void> {
  for (;;) {
    try {
      if (lstatSync(path).isSocket()) return;
    } catch {
      // not there yet
    }
    if (Date.now() > deadline) {
      throw new AppError(ErrorCode.AgentUnavailable, `the agent did not create ${path} in time`);
    }
    await sleep(POLL_MS);
  }
}

/**
 * Connects once the agent listens. The agent binds its socket and then listens; a connection in
 * between is refused, and so is one to a socket left by an agent that died, so refusals are retried
 * until the deadline.
 */
export async function connectWhenListening(path: string, deadline: number): Promise<Socket> {
  for (;;) {
    await waitForSocket(path, deadline);
    const socket = connectNoFollow(path);
    const refused = await new Promise<Error | undefined>((resolve) => {
      socket.once('connect', () => resolve(undefined));
      socket.once('error', resolve);
    });
    if (!refused) return socket;
    socket.destroy();
    if ((refused as NodeJS.ErrnoException).code !== 'ECONNREFUSED' || Date.now() > deadline) {
      throw new AppError(ErrorCode.AgentUnavailable, `cannot reach the agent: ${refused.message}`);
    }
    await sleep(POLL_MS);
  }
}

interface Pending {
  id: number;
  resolve: (reply: AgentReply) => void;
  reject: (error: Error) => void;
  onOutput?: AgentRequest['onOutput'];
  onImage?: AgentRequest['onImage'];
  onResult?: AgentRequest['onResult'];
}

/** The agent's refusals of a process request that belong to the caller, with their codes. */
const PROCESS_REFUSALS = new Map<string, ErrorCode>([
  ['ProcessNotFound', ErrorCode.ProcessNotFound],
  ['TooManyProcesses', ErrorCode.TooManyProcesses],
  ['StdinFull', ErrorCode.ProcessStdinUnavailable],
  ['StdinClosed', ErrorCode.ProcessStdinUnavailable],
  ['CommandStartError', ErrorCode.InvalidParameter],
]);

function processRefusal(reply: FailureReply): AppError {
  const code = PROCESS_REFUSALS.get(reply.error.code) ?? ErrorCode.InvalidAgentRequest;
  return new AppError(
    code,
    code === ErrorCode.InvalidAgentRequest
      ? `${reply.error.code}: ${reply.error.message}`
      : reply.error.message,
  );
}

/** The agent's refusals of a context request that belong to the caller, with their codes. */
const CONTEXT_REFUSALS = new Map<string, ErrorCode>([
  ['ContextNotFound', ErrorCode.ContextNotFound],
  ['UnsupportedLanguage', ErrorCode.NotSupported],
  ['TooManyContexts', ErrorCode.TooManyContexts],
  ['BadRequest', ErrorCode.InvalidParameter],
  ['UnknownOperation', ErrorCode.NotSupported],
]);

function contextRefusal(reply: FailureReply): AppError {
  const code = CONTEXT_REFUSALS.get(reply.error.code);
  if (code === undefined) {
    return new AppError(ErrorCode.InvalidAgentRequest, `${reply.error.code}: ${reply.error.message}`);
  }
  return new AppError(
    code,
    reply.error.code === 'UnknownOperation'
      ? 'this sandbox’s interpreter has no contexts'
      : reply.error.message,
  );
}

export class AgentClient {
  private readonly lines = new LineReader(
    MAX_LINE_BYTES,
    (line) => this.onLine(line),
    () =>
      this.fail(new AppError(ErrorCode.AgentProtocolError, `agent message exceeds ${MAX_LINE_BYTES} bytes`)),
  );
  private nextId = 1;
  private pending: Pending | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  private closeError: Error | undefined;
  private readonly closeListeners: ((error: Error) => void)[] = [];

  private constructor(
    private readonly socket: Socket,
    readonly hello: AgentHello,
    private readonly control: AgentControl,
    private readonly options: AgentClientOptions,
  ) {
    socket.on('data', (chunk: Buffer) => this.lines.push(chunk));
    socket.on('error', (error) =>
      this.fail(new AppError(ErrorCode.AgentUnavailable, `agent connection failed: ${error.message}`)),
    );
    socket.on('close', () =>
      this.fail(new AppError(ErrorCode.AgentUnavailable, 'the agent closed its connection')),
    );
  }

  /**
   * Waits for the agent's socket, connects and reads its greeting. An agent that accepts the
   * connection but stays silent for `interruptSilentAfterMs` is still running code a previous
   * connection sent (its server died): that code is interrupted, so the greeting follows. The clock
   * starts only once the agent listens; an agent still starting up is never interrupted.
   */
  static async connect(
    socketPath: string,
    control: AgentControl,
    options: AgentClientOptions,
    interruptSilentAfterMs?: number,
  ): Promise<AgentClient> {
    const deadline = Date.now() + options.connectTimeoutMs;
    const socket = await connectWhenListening(socketPath, deadline);
    const hello = await new Promise<AgentHello>((resolve, reject) => {
      let received = '';
      const timer = setTimeout(
        () => done(new AppError(ErrorCode.AgentUnavailable, 'the agent did not greet in time')),
        Math.max(0, deadline - Date.now()),
      );
      const silent =
        interruptSilentAfterMs === undefined
          ? undefined
          : setTimeout(() => void control.interrupt().catch(() => undefined), interruptSilentAfterMs);
      const done = (error?: Error, value?: AgentHello) => {
        clearTimeout(timer);
        clearTimeout(silent);
        socket.off('data', onData);
        socket.off('error', onError);
        socket.off('close', onClose);
        if (error) {
          socket.destroy();
          reject(error);
        } else {
          resolve(value!);
        }
      };
      const onData = (chunk: Buffer) => {
        received += chunk.toString();
        const end = received.indexOf('\n');
        if (end < 0) return;
        socket.pause();
        const rest = received.slice(end + 1);
        try {
          done(undefined, parseHello(received.slice(0, end)));
          if (rest) socket.unshift(Buffer.from(rest));
        } catch (error) {
          done(new AppError(ErrorCode.AgentProtocolError, (error as Error).message, { cause: error }));
        }
      };
      const onError = (error: Error) =>
        done(new AppError(ErrorCode.AgentUnavailable, `cannot reach the agent: ${error.message}`));
      const onClose = () =>
        done(new AppError(ErrorCode.AgentUnavailable, 'the agent closed its connection before greeting'));
      socket.on('data', onData);
      socket.on('error', onError);
      socket.on('close', onClose);
    });
    const client = new AgentClient(socket, hello, control, options);
    socket.resume();
    return client;
  }

  get closed(): boolean {
    return this.closeError !== undefined;
  }

  /** Called once when the connection ends for any reason other than {@link close}. */
  onClose(listener: (error: Error) => void): void {
    this.closeListeners.push(listener);
  }

  close(): void {
    this.closeListeners.length = 0;
    this.socket.destroy();
  }

  private fail(error: Error): void {
    if (this.closeError) return;
    this.closeError = error;
    this.socket.destroy();
    this.pending?.reject(error);
    this.pending = undefined;
    for (const listener of this.closeListeners) listener(error);
  }

  private onLine(line: string): void {
    let reply: AgentReply | OutputEvent | ImageEvent | ResultEvent;
    try {
      reply = parseAgentMessage(line);
    } catch (error) {
      const message = error instanceof MalformedMessageError ? error.message : String(error);
      this.fail(new AppError(ErrorCode.AgentProtocolError, message, { cause: error }));
      return;
    }
    const pending = this.pending;
    if ('event' in reply) {
      // Output of the request under way; output that trails its reply (a child process still
      // writing) has no one to go to.
      if (pending?.id !== reply.id) return;
      if (reply.event === 'image') pending.onImage?.(reply.image);
      else if (reply.event === 'result') pending.onResult?.(reply.result);
      else pending.onOutput?.(reply.stream, reply.text);
      return;
    }
    if (!pending || reply.id !== pending.id) {
      this.fail(
        new AppError(
          ErrorCode.AgentProtocolError,
          `agent answered request ${String(reply.id)}, which is not pending`,
        ),
      );
      return;
    }
    this.pending = undefined;
    pending.resolve(reply);
  }

  /** Requests run one at a time, in call order. */
  private serialized<T>(work: () => Promise<T>): Promise<T> {
    const result = this.queue.then(work, work);
    this.queue = result.catch(() => undefined);
    return result;
  }

  private send(
    message: Record<string, unknown>,
    listeners: Pick<AgentRequest, 'onOutput' | 'onImage' | 'onResult'> = {},
  ): { id: number; reply: Promise<AgentReply> } {
    if (this.closeError) throw this.closeError;
    const id = this.nextId++;
    const reply = new Promise<AgentReply>((resolve, reject) => {
      this.pending = { id, resolve, reject, ...listeners };
    });
    this.socket.write(`${JSON.stringify({ ...message, id })}\n`);
    return { id, reply };
  }

  ping(): Promise<PingReply> {
    return this.serialized(async () => {
      const reply = await this.send({ op: 'ping' }).reply;
      if (!reply.ok || !('executions' in reply)) throw this.unexpected(reply);
      return reply;
    });
  }

  execute(options: AgentRequest): Promise<AgentResult> {
    return this.serialized(async () => {
      const language = options.language ?? 'python';
      const stream = options.onOutput || options.onImage || options.onResult ? { stream: true } : {};
      const { reply } = this.send(
        language === 'python' || language === 'javascript'
          ? {
              op: 'execute',
              code: options.code,
              maxOutputChars: options.maxOutputChars,
              ...(options.context !== undefined && { context: options.context, env: options.env ?? {} }),
              ...stream,
            }
          : {
              op: 'shell',
              command: options.code,
              shell: language,
              maxOutputChars: options.maxOutputChars,
              ...stream,
            },
        {
          ...(options.onOutput && { onOutput: options.onOutput }),
          ...(options.onImage && { onImage: options.onImage }),
          ...(options.onResult && { onResult: options.onResult }),
        },
      );
      let timedOut = false;
      let timer: NodeJS.Timeout | undefined;
      let stop: (() => void) | undefined;
      const overrun = new Promise<never>((_, reject) => {
        // Past its time, or abandoned by its caller: the code is interrupted, and killed if it
        // ignores that for the grace period.
        stop = () => {
          clearTimeout(timer);
          void this.control.interrupt().catch(() => undefined);
          timer = setTimeout(() => {
            void this.control
              .kill()
              .catch(() => undefined)
              .then(() =>
                reject(
                  new AppError(
                    ErrorCode.SessionLost,
                    `execution exceeded ${options.timeoutMs} ms and ignored the interrupt for ${this.options.interruptGraceMs} ms; the sandbox was killed`,
                  ),
                ),
              );
          }, this.options.interruptGraceMs);
        };
        timer = setTimeout(() => {
          timedOut = true;
          stop!();
        }, options.timeoutMs);
      });
      const onAbort = () => stop?.();
      options.signal?.addEventListener('abort', onAbort, { once: true });
      if (options.signal?.aborted) onAbort();
      try {
        const answer = await Promise.race([reply, overrun]);
        if (!answer.ok && CONTEXT_REFUSALS.has(answer.error.code)) throw contextRefusal(answer);
        if (!answer.ok || !('status' in answer)) throw this.unexpected(answer);
        return { ...answer, timedOut };
      } finally {
        clearTimeout(timer);
        options.signal?.removeEventListener('abort', onAbort);
      }
    });
  }

  /**
   * A request about the session's background processes. It waits for a command under way, as every
   * request does; the agent answers it at once (a stdin write waits a second at most).
   */
  process(request: ProcessRequest): Promise<ProcessReply> {
    return this.serialized(async () => {
      const reply = await this.send(request).reply;
      if (!reply.ok) throw processRefusal(reply);
      const fits =
        request.op === 'process.list'
          ? 'processes' in reply
          : 'process' in reply && (request.op !== 'process.output' || 'stdout' in reply);
      if (!fits) throw this.unexpected(reply);
      return reply as ProcessReply;
    });
  }

  /** A request about the session's contexts (E2B's); refused by an agent that has none (Node's). */
  context(request: ContextRequest): Promise<ContextReply> {
    return this.serialized(async () => {
      const reply = await this.send(request).reply;
      if (!reply.ok) throw contextRefusal(reply);
      const fits =
        request.op === 'context.list' || request.op === 'context.remove'
          ? 'contexts' in reply
          : 'context' in reply;
      if (!fits) throw this.unexpected(reply);
      return reply;
    });
  }

  /**
   * Starts the sandbox's envd agent (E2B's, beside this one) if it does not run yet; answers the name
   * of its socket in the agent's directory once it listens.
   */
  startEnvd(): Promise<string> {
    return this.serialized(async () => {
      const reply = await this.send({ op: 'envd.start' }).reply;
      if (!reply.ok || !('socket' in reply) || !/^[a-z.]{1,32}$/.test(reply.socket))
        throw this.unexpected(reply);
      return reply.socket;
    });
  }

  private unexpected(reply: AgentReply): AppError {
    if (!reply.ok)
      return new AppError(ErrorCode.InvalidAgentRequest, `${reply.error.code}: ${reply.error.message}`);
    return new AppError(ErrorCode.AgentProtocolError, 'agent reply does not match the request');
  }
}
