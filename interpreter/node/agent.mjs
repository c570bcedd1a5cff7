/**
 * Sandpool's Node interpreter agent (NodeLTS pools).
 *
 * Runs inside a sandbox as the child of its init, started by launch.sh with its stdout and stderr on
 * pipes that a worker thread reads (output-reader.cjs). It listens on a unix socket and executes code
 * sent by the host in the one global scope of this process, the way a notebook kernel does, speaking
 * the same JSON-lines protocol as the Python agent (interpreter/PROTOCOL.md): `hello`, `ping`,
 * `execute` (with `stream`). Standard library and acorn only.
 */

import { randomBytes } from 'node:crypto';
import { writeSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { inspect } from 'node:util';
import { Script, constants as vmConstants } from 'node:vm';
import { Worker } from 'node:worker_threads';

import { compileCell } from './cell.mjs';

const PROTOCOL_VERSION = 1;
const MAX_REQUEST_BYTES = 16 * 1024 * 1024;
const HERE = dirname(fileURLToPath(import.meta.url));
const CELL_FILENAME = '<cell>';

/** Stack frames of the agent itself, which a traceback leaves out. */
const AGENT_FRAME = /\((?:node:|file:\/\/)|\bat (?:node:|file:\/\/)|agent\.mjs|cell\.mjs/;

/** The output reader: starts and ends the capture of an execution's stdout and stderr. */
class OutputCapture {
  constructor() {
    this.worker = new Worker(join(HERE, 'output-reader.cjs'));
    this.worker.unref();
    this.waiting = undefined;
    this.onOutput = undefined;
    this.worker.on('message', (message) => {
      if (message.op === 'output') this.onOutput?.(message.stream, message.text);
      else this.waiting?.(message);
    });
  }

  request(message) {
    return new Promise((resolve) => {
      this.waiting = resolve;
      this.worker.postMessage(message);
    });
  }

  /** Captures from here on (once the reader has taken the request: nothing printed slips past). */
  async start(maxChars, onOutput) {
    this.marker = `\u0000sandpool-end-${randomBytes(12).toString('hex')}\u0000`;
    this.onOutput = onOutput;
    await this.request({ op: 'start', marker: this.marker, maxChars, stream: onOutput !== undefined });
  }

  /** Ends the capture: the marker goes down both pipes after everything the code wrote. */
  async finish() {
    writeSync(1, this.marker);
    writeSync(2, this.marker);
    const { stdout, stderr, stdoutTruncated, stderrTruncated } = await this.request({ op: 'finish' });
    this.onOutput = undefined;
    return { stdout, stderr, stdoutTruncated, stderrTruncated };
  }
}

/** The value of the last expression as JSON: primitives as themselves, anything else as Node's REPL shows it. */
function jsonValue(value) {
  if (value === undefined || value === null) return null;
  if (typeof value === 'boolean' || typeof value === 'string') return value;
  if (typeof value === 'number') return Number.isFinite(value) ? value : String(value);
  try {
    return inspect(value, { showProxy: true });
  } catch (error) {
    return `[value that cannot be shown: ${String(error)}]`;
  }
}

/** An error as the protocol reports it; its stack starts at the user's code. */
function codeError(thrown) {
  const isError = thrown instanceof Error;
  const name = isError ? thrown.name : 'Uncaught';
  const message = isError ? thrown.message : inspect(thrown);
  const stack = isError && typeof thrown.stack === 'string' ? thrown.stack : `${name}: ${message}`;
  const traceback = stack
    .split('\n')
    .filter((line) => !AGENT_FRAME.test(line))
    .join('\n');
  return { name, message, traceback: `${traceback}\n` };
}

const isInterrupt = (error) => error?.code === 'ERR_SCRIPT_EXECUTION_INTERRUPTED' || error === INTERRUPTED;
const INTERRUPTED = Symbol('interrupted');

class Interpreter {
  constructor() {
    this.executions = 0;
    this.output = new OutputCapture();
    this.stopAwaiting = undefined;
    // The user's code requires and imports relative to /mnt/data (packages resolve to /node_modules).
    const cwd = process.cwd();
    globalThis.require = createRequire(join(cwd, CELL_FILENAME));
    globalThis.__dirname = cwd;
    globalThis.__filename = join(cwd, CELL_FILENAME);
  }

  /** SIGINT: stops a cell that awaits (a synchronous one is stopped by `breakOnSigint`). */
  interrupt() {
    this.stopAwaiting?.();
  }

  async execute(code, maxOutputChars, onOutput) {
    this.executions += 1;
    await this.output.start(maxOutputChars, onOutput);
    const started = performance.now();
    let value;
    let error = null;
    let interrupted = false;
    try {
      const cell = compileCell(code);
      const script = new Script(cell.source, {
        filename: CELL_FILENAME,
        importModuleDynamically: vmConstants.USE_MAIN_CONTEXT_DEFAULT_LOADER,
      });
      let result = script.runInThisContext({ breakOnSigint: true, displayErrors: false });
      if (cell.awaits) {
        const stopped = new Promise((_, reject) => (this.stopAwaiting = () => reject(INTERRUPTED)));
        try {
          result = await Promise.race([result, stopped]);
        } finally {
          this.stopAwaiting = undefined;
        }
      }
      value = cell.hasValue ? result : undefined;
    } catch (thrown) {
      if (isInterrupt(thrown)) {
        interrupted = true;
        error = { name: 'Interrupted', message: 'execution interrupted', traceback: '' };
      } else {
        error = codeError(thrown);
      }
    }
    const durationMs = performance.now() - started;
    const captured = await this.output.finish();
    return {
      status: error ? 'failed' : 'succeeded',
      interrupted,
      ...captured,
      result: error ? null : jsonValue(value),
      images: [],
      error,
      durationMs: Math.round(durationMs * 1000) / 1000,
    };
  }
}

/** One connection's requests, answered one at a time in order. */
function serveConnection(socket, interpreter, hello, done) {
  let buffered = '';
  let queue = Promise.resolve();
  const send = (message) => socket.write(`${JSON.stringify(message)}\n`);

  async function handle(request) {
    const reply = { id: request?.id ?? null };
    const op = request?.op;
    if (op === 'ping') {
      Object.assign(reply, { ok: true, executions: interpreter.executions });
    } else if (op === 'execute') {
      const { code, maxOutputChars = 4096 } = request;
      if (typeof code !== 'string' || !Number.isInteger(maxOutputChars) || maxOutputChars < 0) {
        Object.assign(reply, {
          ok: false,
          error: { code: 'BadRequest', message: 'execute needs code (string) and maxOutputChars (int >= 0)' },
        });
      } else {
        const onOutput =
          request.stream === true
            ? (stream, text) => send({ id: request.id, event: 'output', stream, text })
            : undefined;
        Object.assign(reply, { ok: true, ...(await interpreter.execute(code, maxOutputChars, onOutput)) });
      }
    } else {
      Object.assign(reply, {
        ok: false,
        error: { code: 'UnknownOperation', message: `unknown op ${JSON.stringify(op)}` },
      });
    }
    send(reply);
  }

  send(hello);
  socket.setEncoding('utf8');
  socket.on('data', (chunk) => {
    buffered += chunk;
    if (buffered.length > MAX_REQUEST_BYTES && !buffered.includes('\n')) {
      socket.destroy();
      return;
    }
    for (let end = buffered.indexOf('\n'); end >= 0; end = buffered.indexOf('\n')) {
      const line = buffered.slice(0, end);
      buffered = buffered.slice(end + 1);
      let request;
      try {
        request = JSON.parse(line);
      } catch {
        socket.destroy();
        return;
      }
      queue = queue.then(() => handle(request));
    }
  });
  socket.on('error', () => undefined);
  socket.on('close', () => void queue.then(done));
}

function serve(socketPath) {
  const interpreter = new Interpreter();
  // SIGINT stops the running cell; between cells it has nothing to stop and must not end the agent.
  process.on('SIGINT', () => interpreter.interrupt());
  // What the user's code leaves running (a timer, a promise nobody awaits) may fail later: the
  // session survives it, as a notebook kernel does, and the failure shows on stderr.
  process.on('uncaughtException', (error) => console.error('Uncaught', error));
  process.on('unhandledRejection', (reason) => console.error('Unhandled promise rejection:', reason));
  const hello = { op: 'hello', protocol: PROTOCOL_VERSION, pid: process.pid, node: process.versions.node };
  // One connection at a time, as the Python agent: a new one waits until the previous one closes.
  const waiting = [];
  let serving = false;
  const next = () => {
    const socket = waiting.shift();
    if (!socket) {
      serving = false;
      return;
    }
    serving = true;
    socket.resume();
    serveConnection(socket, interpreter, hello, next);
  };
  const server = createServer({ pauseOnConnect: true }, (socket) => {
    waiting.push(socket);
    if (!serving) next();
  });
  server.listen(socketPath);
}

if (process.argv.length !== 3) {
  writeSync(2, 'usage: agent.mjs SOCKET_PATH\n');
  process.exit(2);
}
serve(process.argv[2]);
