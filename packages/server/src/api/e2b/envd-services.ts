/**
 * @module api/e2b/envd-services
 * E2B's envd services (process and filesystem) over Connect, served by Connect's own library from
 * the generated descriptions (api/e2b/envd/*_pb.ts): each call is turned into a request to the
 * sandbox's envd agent (interpreter/envd-client), which runs it inside the sandbox as its user, and
 * the agent's answer back into the service's messages. A command's stream begins with its `start`,
 * flushed at once, keeps alive when the client asks, and ends with its `end`; a client that leaves
 * stops its stream, and a deadline that passes kills its command, as upstream envd does.
 */

import { create, type MessageInitShape } from '@bufbuild/protobuf';
import { TimestampSchema, type Timestamp } from '@bufbuild/protobuf/wkt';
import {
  Code,
  ConnectError,
  createContextKey,
  type ConnectRouter,
  type HandlerContext,
} from '@connectrpc/connect';

import { textOf } from '../wire.js';
import { AppError } from '../../errors.js';
import { EnvdRefusal, type EnvdClient, type EnvdMessage, type EnvdStream } from '../../pool/e2b-sandboxes.js';
import { sandboxEnvironment } from '../../pool/e2b-sandboxes.js';
import type { Session } from '../../pool/pool-manager.js';
import {
  EventType,
  FileType,
  Filesystem,
  type EntryInfo,
  type WatchDirResponseSchema,
} from './envd/filesystem_pb.js';
import {
  Process,
  Signal,
  type ProcessEvent,
  type ProcessSelector,
  type ConnectResponseSchema,
  type StartResponseSchema,
} from './envd/process_pb.js';

type StartMessage = MessageInitShape<typeof StartResponseSchema>;
type ConnectMessage = MessageInitShape<typeof ConnectResponseSchema>;
type WatchMessage = MessageInitShape<typeof WatchDirResponseSchema>;

/** The sandbox session a call reached (set by api/e2b/envd-routes before the call runs). */
export const SESSION = createContextKey<Session | undefined>(undefined, { description: 'sandbox session' });

/** Keepalives, when the client asks for them, at most this often apart. */
const MIN_KEEPALIVE_MS = 1_000;

const CONNECT_CODES: Record<string, Code> = {
  canceled: Code.Canceled,
  invalid_argument: Code.InvalidArgument,
  not_found: Code.NotFound,
  already_exists: Code.AlreadyExists,
  permission_denied: Code.PermissionDenied,
  resource_exhausted: Code.ResourceExhausted,
  failed_precondition: Code.FailedPrecondition,
  unimplemented: Code.Unimplemented,
  internal: Code.Internal,
  unavailable: Code.Unavailable,
};

/** A failure as Connect's error: the agent's refusals keep their code, Sandpool's map by status. */
function connectError(error: unknown): ConnectError {
  if (error instanceof EnvdRefusal)
    return new ConnectError(error.message, CONNECT_CODES[error.code] ?? Code.Internal);
  if (error instanceof AppError) {
    const code =
      error.status === 401
        ? Code.Unauthenticated
        : error.status === 403
          ? Code.PermissionDenied
          : error.status === 404 || error.status === 410
            ? Code.NotFound
            : error.status < 500
              ? Code.InvalidArgument
              : Code.Unavailable;
    return new ConnectError(error.message, code);
  }
  return ConnectError.from(error);
}

function sessionOf(context: HandlerContext): Session {
  const session = context.values.get(SESSION);
  if (!session) throw new ConnectError('no sandbox session', Code.Internal);
  return session;
}

async function agentOf(context: HandlerContext): Promise<EnvdClient> {
  try {
    return await sessionOf(context).instance.envd();
  } catch (error) {
    throw connectError(error);
  }
}

async function call(context: HandlerContext, op: string, fields: EnvdMessage): Promise<EnvdMessage> {
  const agent = await agentOf(context);
  try {
    return await agent.request(op, fields);
  } catch (error) {
    throw connectError(error);
  }
}

const selector = (process: ProcessSelector | undefined): EnvdMessage =>
  process?.selector.case === 'pid'
    ? { pid: process.selector.value }
    : process?.selector.case === 'tag'
      ? { tag: process.selector.value }
      : {};

/**
 * A time the agent gives in nanoseconds since the epoch (read as a double: exact to a microsecond or
 * so), as protobuf's Timestamp.
 */
function timestampOfNanoseconds(value: unknown): Timestamp {
  const ns = BigInt(Math.trunc(Number(value) || 0));
  return create(TimestampSchema, { seconds: ns / 1_000_000_000n, nanos: Number(ns % 1_000_000_000n) });
}

/** An agent's entry as envd's EntryInfo. */
function entryInfo(entry: unknown): EntryInfo | undefined {
  if (typeof entry !== 'object' || entry === null) return undefined;
  const e = entry as Record<string, unknown>;
  const types: Record<string, FileType> = {
    FILE_TYPE_FILE: FileType.FILE,
    FILE_TYPE_DIRECTORY: FileType.DIRECTORY,
    FILE_TYPE_SYMLINK: FileType.SYMLINK,
  };
  return {
    $typeName: 'filesystem.EntryInfo',
    name: textOf(e.name),
    type: types[textOf(e.type)] ?? FileType.UNSPECIFIED,
    path: textOf(e.path),
    size: BigInt(Math.trunc(Number(e.size ?? 0))),
    mode: Number(e.mode ?? 0),
    permissions: textOf(e.permissions),
    owner: textOf(e.owner),
    group: textOf(e.group),
    modifiedTime: timestampOfNanoseconds(e.modifiedTime),
    ...(typeof e.symlinkTarget === 'string' && { symlinkTarget: e.symlinkTarget }),
    metadata: {},
  };
}

const FS_EVENTS: Record<string, EventType> = {
  EVENT_TYPE_CREATE: EventType.CREATE,
  EVENT_TYPE_WRITE: EventType.WRITE,
  EVENT_TYPE_REMOVE: EventType.REMOVE,
  EVENT_TYPE_RENAME: EventType.RENAME,
  EVENT_TYPE_CHMOD: EventType.CHMOD,
};

/**
 * An agent's streaming request as an async iterable of `T`s: each event mapped (undefined: passed
 * over), keepalives between them when the client asked, stopped when the client leaves.
 */
async function* streamed<T>(
  context: HandlerContext,
  start: (agent: EnvdClient, onEvent: (event: EnvdMessage) => void) => EnvdStream,
  map: (event: EnvdMessage) => T | undefined,
  keepalive: () => T,
  onDeadline?: () => void,
): AsyncGenerator<T> {
  const agent = await agentOf(context);
  const queue: T[] = [];
  let wake: (() => void) | undefined;
  const push = (item: T) => {
    queue.push(item);
    wake?.();
  };
  const stream = start(agent, (event) => {
    const item = map(event);
    if (item !== undefined) push(item);
  });
  const state = { finished: false };
  let failure: unknown;
  stream.ended
    .then(
      () => (state.finished = true),
      (error: unknown) => {
        failure = error;
        state.finished = true;
      },
    )
    .finally(() => wake?.());
  const interval = Number(context.requestHeader.get('keepalive-ping-interval') ?? 0) * 1000;
  const pinger =
    interval > 0 ? setInterval(() => push(keepalive()), Math.max(MIN_KEEPALIVE_MS, interval)) : undefined;
  const onAbort = () => {
    if (
      context.signal.reason instanceof ConnectError &&
      context.signal.reason.code === Code.DeadlineExceeded
    ) {
      onDeadline?.();
    }
    stream.cancel();
    wake?.();
  };
  context.signal.addEventListener('abort', onAbort);
  try {
    for (;;) {
      while (queue.length > 0) yield queue.shift()!;
      if (state.finished || context.signal.aborted) break;
      await new Promise<void>((resolve) => (wake = resolve));
      wake = undefined;
    }
    while (queue.length > 0) yield queue.shift()!;
    if (failure !== undefined) throw connectError(failure);
  } finally {
    clearInterval(pinger);
    context.signal.removeEventListener('abort', onAbort);
    stream.cancel();
  }
}

/** An agent's process event as envd's ProcessEvent. */
function processEvent(event: EnvdMessage): ProcessEvent['event'] | undefined {
  switch (event.event) {
    case 'start':
      return {
        case: 'start',
        value: { $typeName: 'process.ProcessEvent.StartEvent', pid: Number(event.pid) },
      };
    case 'data': {
      const data = Buffer.from(textOf(event.data), 'base64');
      const stream = event.stream === 'stderr' ? 'stderr' : event.stream === 'pty' ? 'pty' : 'stdout';
      return {
        case: 'data',
        value: { $typeName: 'process.ProcessEvent.DataEvent', output: { case: stream, value: data } },
      };
    }
    case 'end':
      return {
        case: 'end',
        value: {
          $typeName: 'process.ProcessEvent.EndEvent',
          exitCode: Number(event.exitCode ?? -1),
          exited: event.exited === true,
          status: textOf(event.status),
          ...(typeof event.error === 'string' && { error: event.error }),
        },
      };
    default:
      return undefined;
  }
}

const KEEPALIVE = { case: 'keepalive', value: { $typeName: 'process.ProcessEvent.KeepAlive' } } as const;

export function envdServices(router: ConnectRouter): ConnectRouter {
  router.service(Process, {
    async *start(request, context) {
      const session = sessionOf(context);
      const config = request.process;
      if (!config) throw new ConnectError('process is required', Code.InvalidArgument);
      let pid: number | undefined;
      const fields: EnvdMessage = {
        process: {
          cmd: config.cmd,
          args: config.args,
          envs: sandboxEnvironment(session.row, config.envs),
          ...(config.cwd !== undefined && { cwd: config.cwd }),
        },
        ...(request.tag !== undefined && { tag: request.tag }),
        stdin: request.stdin ?? false,
        ...(request.pty?.size && {
          pty: { size: { cols: request.pty.size.cols, rows: request.pty.size.rows } },
        }),
      };
      yield* streamed<StartMessage>(
        context,
        (agent, onEvent) => agent.stream('process.start', fields, onEvent),
        (event) => {
          if (event.event === 'start') pid = Number(event.pid);
          const found = processEvent(event);
          return found && { event: { event: found } };
        },
        () => ({ event: { event: KEEPALIVE } }),
        // The deadline passed: the command goes, as upstream envd's does.
        () => {
          if (pid !== undefined)
            void call(context, 'process.signal', { process: { pid }, signal: 'SIGKILL' });
        },
      );
    },
    async *connect(request, context) {
      const fields = { process: selector(request.process) };
      yield* streamed<ConnectMessage>(
        context,
        (agent, onEvent) => agent.stream('process.connect', fields, onEvent),
        (event) => {
          const found = processEvent(event);
          return found && { event: { event: found } };
        },
        () => ({ event: { event: KEEPALIVE } }),
      );
    },
    async list(_request, context) {
      const reply = await call(context, 'process.list', {});
      const processes = Array.isArray(reply.processes) ? (reply.processes as Record<string, unknown>[]) : [];
      return {
        processes: processes.map((found) => {
          const config = (found.config ?? {}) as Record<string, unknown>;
          return {
            pid: Number(found.pid),
            ...(typeof found.tag === 'string' && { tag: found.tag }),
            config: {
              cmd: textOf(config.cmd),
              args: Array.isArray(config.args) ? config.args.map(String) : [],
              envs: (config.envs ?? {}) as Record<string, string>,
              ...(typeof config.cwd === 'string' && { cwd: config.cwd }),
            },
          };
        }),
      };
    },
    async sendInput(request, context) {
      const input = request.input?.input;
      if (!input?.case) throw new ConnectError('input is required', Code.InvalidArgument);
      await call(context, 'process.input', {
        process: selector(request.process),
        pty: input.case === 'pty',
        data: Buffer.from(input.value).toString('base64'),
      });
      return {};
    },
    async streamInput(requests, context) {
      let target: EnvdMessage | undefined;
      for await (const message of requests) {
        if (message.event.case === 'start') target = selector(message.event.value.process);
        if (message.event.case === 'data') {
          const input = message.event.value.input?.input;
          if (!target || !input?.case)
            throw new ConnectError('start the input stream first', Code.InvalidArgument);
          await call(context, 'process.input', {
            process: target,
            pty: input.case === 'pty',
            data: Buffer.from(input.value).toString('base64'),
          });
        }
      }
      return {};
    },
    async sendSignal(request, context) {
      const signal =
        request.signal === Signal.SIGKILL
          ? 'SIGKILL'
          : request.signal === Signal.SIGTERM
            ? 'SIGTERM'
            : undefined;
      if (!signal) throw new ConnectError('signal must be SIGTERM or SIGKILL', Code.InvalidArgument);
      await call(context, 'process.signal', { process: selector(request.process), signal });
      return {};
    },
    async closeStdin(request, context) {
      await call(context, 'process.closeStdin', { process: selector(request.process) });
      return {};
    },
    async update(request, context) {
      const size = request.pty?.size;
      if (!size) throw new ConnectError('pty.size is required', Code.InvalidArgument);
      await call(context, 'process.resize', {
        process: selector(request.process),
        size: { cols: size.cols, rows: size.rows },
      });
      return {};
    },
  });

  const watchers = new Map<string, { events: EnvdMessage[]; stream: EnvdStream; session: string }>();
  router.service(Filesystem, {
    async stat(request, context) {
      return { entry: entryInfo((await call(context, 'fs.stat', { path: request.path })).entry) };
    },
    async listDir(request, context) {
      const reply = await call(context, 'fs.list', { path: request.path, depth: request.depth || 1 });
      const entries = Array.isArray(reply.entries) ? reply.entries : [];
      return { entries: entries.map(entryInfo).filter((entry) => entry !== undefined) };
    },
    async makeDir(request, context) {
      return { entry: entryInfo((await call(context, 'fs.mkdir', { path: request.path })).entry) };
    },
    async move(request, context) {
      const reply = await call(context, 'fs.move', {
        source: request.source,
        destination: request.destination,
      });
      return { entry: entryInfo(reply.entry) };
    },
    async remove(request, context) {
      await call(context, 'fs.remove', { path: request.path });
      return {};
    },
    async *watchDir(request, context) {
      const fields = { path: request.path, recursive: request.recursive, includeEntry: request.includeEntry };
      yield* streamed<WatchMessage>(
        context,
        (agent, onEvent) => agent.stream('fs.watch', fields, onEvent),
        (event) => {
          if (event.event === 'watching') return { event: { case: 'start' as const, value: {} } };
          if (event.event !== 'fs') return undefined;
          const entry = entryInfo(event.entry);
          return {
            event: {
              case: 'filesystem' as const,
              value: {
                name: textOf(event.name),
                type: FS_EVENTS[textOf(event.type)] ?? EventType.UNSPECIFIED,
                ...(entry && { entry }),
              },
            },
          };
        },
        () => ({ event: { case: 'keepalive' as const, value: {} } }),
      );
    },
    async createWatcher(request, context) {
      const agent = await agentOf(context);
      const events: EnvdMessage[] = [];
      const started = Promise.withResolvers<undefined>();
      const stream = agent.stream(
        'fs.watch',
        { path: request.path, recursive: request.recursive, includeEntry: request.includeEntry },
        (event) => (event.event === 'watching' ? started.resolve(undefined) : events.push(event)),
      );
      stream.ended.then(() => started.resolve(undefined), started.reject);
      try {
        await started.promise;
      } catch (error) {
        throw connectError(error);
      }
      const watcherId = crypto.randomUUID();
      watchers.set(watcherId, { events, stream, session: sessionOf(context).id });
      return { watcherId };
    },
    getWatcherEvents(request, context) {
      const watcher = watchers.get(request.watcherId);
      if (!watcher || watcher.session !== sessionOf(context).id) {
        throw new ConnectError(`no watcher ${request.watcherId}`, Code.NotFound);
      }
      return {
        events: watcher.events.splice(0).map((event) => {
          const entry = entryInfo(event.entry);
          return {
            name: textOf(event.name),
            type: FS_EVENTS[textOf(event.type)] ?? EventType.UNSPECIFIED,
            ...(entry && { entry }),
          };
        }),
      };
    },
    removeWatcher(request, context) {
      const watcher = watchers.get(request.watcherId);
      if (!watcher || watcher.session !== sessionOf(context).id) {
        throw new ConnectError(`no watcher ${request.watcherId}`, Code.NotFound);
      }
      watcher.stream.cancel();
      watchers.delete(request.watcherId);
      return {};
    },
  });
  return router;
}
