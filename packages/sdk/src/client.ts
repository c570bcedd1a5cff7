/**
 * @module client
 * {@link SandpoolClient}: one object per server and credential. Its capabilities are sub-objects:
 * `pools` (the management plane), `pool(name)` → `session(identifier)` (the data plane), `keys` and
 * `tokens`. Requests go through openapi-fetch, typed by the server's OpenAPI document.
 */

import { createParser } from 'eventsource-parser';
import createClient, { type Client } from 'openapi-fetch';

import { apiErrorFrom, ConnectionError, OperationFailedError } from './errors.js';
import { poolDefinition, type PoolOptions, type SessionPool } from './pool-definition.js';
import { retryingFetch, sleep, type RetryOptions } from './retry.js';
import type { components, paths } from './schema.gen.js';

type Schemas = components['schemas'];
export type Execution = Schemas['Execution'];
export type ShellExecution = Schemas['ShellExecution'];
/** A figure an execution produced (a PNG, base64). */
export type Image = NonNullable<Execution['result']>['images'][number];
export type FileInfo = Schemas['File'];
export type BackgroundProcess = Schemas['Process'];
export type ProcessOutput = Schemas['ProcessOutput'];
export type SessionInfo = Schemas['Session'];
export type ApiKey = Schemas['ApiKey'];
export type PoolEvent = Schemas['Event'];
export type AuditEntry = Schemas['AuditEntry'];
export type NodeInfo = Schemas['Node'];
export type UsageTotals = Schemas['UsageTotals'];
export type Readiness = paths['/readyz']['get']['responses'][200]['content']['application/json'];
export type Principal = paths['/sandpool/whoami']['get']['responses'][200]['content']['application/json'];
export type PoolTimeline =
  paths[`${typeof POOLS_PATH}/timeline`]['get']['responses'][200]['content']['application/json'];
export type ConsoleLog =
  paths[`${typeof ENDPOINT}/.management/logs`]['get']['responses'][200]['content']['application/json'];
/** The management versions that answer in the current shape (`lifecycleConfiguration`), which the SDK's types describe. */
export type ManagementApiVersion = Exclude<
  NonNullable<
    paths['/subscriptions/{subscription}/resourceGroups/{resourceGroup}/providers/Microsoft.App/sessionPools/{name}']['get']['parameters']['query']
  >['api-version'],
  `2024-${string}`
>;
/** The data-plane versions whose answers are in the current shapes (the SDK reads no legacy envelope). */
export type DataApiVersion = Exclude<
  paths['/subscriptions/{subscription}/resourceGroups/{resourceGroup}/sessionPools/{pool}/session']['get']['parameters']['query']['api-version'],
  '2024-02-02-preview' | '2024-08-02-preview'
>;

export interface SandpoolClientOptions {
  /** The server's base URL, e.g. `https://127.0.0.1:8443`. */
  endpoint: string;
  /** An API key or a token, or a function that returns one (called for every request, so it can refresh). */
  credential: string | (() => string | Promise<string>);
  /** Default `00000000-0000-0000-0000-000000000000`, the server's default subscription. */
  subscription?: string;
  /** Default `sandpool`, the server's default resource group. */
  resourceGroup?: string;
  /** Retries on 429/503 and connection failures, with jitter; `false` turns them off. */
  retry?: RetryOptions | false;
  /** The `fetch` to use (e.g. one with a custom CA for a self-signed server). Default: the global one. */
  fetch?: typeof fetch;
  /** Default `2025-07-01`. */
  managementApiVersion?: ManagementApiVersion;
  /** Default `2025-10-02-preview`. */
  dataApiVersion?: DataApiVersion;
  /** How often to poll a long-running pool operation, ms. Default 500. */
  pollIntervalMs?: number;
}

export interface WaitOption {
  /** Wait for the long-running operation to finish (default true). */
  wait?: boolean;
  /** While waiting, called with the pool as each poll finds it (e.g. a custom container's image pull). */
  onProgress?: (pool: SessionPool) => void;
}

export interface ExecuteOptions {
  /** 1 to 220; default 120 for Python, 180 for Shell. */
  timeoutInSeconds?: number;
  /** stdout and stderr are each cut to this many characters; default 4096. */
  outputStreamsMaxLength?: number;
  /** Makes a retried request idempotent: the same id returns the first run's result. */
  operationId?: string;
  /** Return at once with status `Running`; read the result with `getExecution`. */
  async?: boolean;
  signal?: AbortSignal;
  /** Streams the run: called with stdout as the code writes it (Sandpool's event stream). */
  onStdout?: (text: string) => void;
  onStderr?: (text: string) => void;
  onImage?: (image: Image) => void;
}

/** The events of a Server-Sent Events body, as they arrive. */
async function* serverSentEvents(
  body: ReadableStream<Uint8Array>,
): AsyncGenerator<{ event: string; data: string; id: string | undefined }> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  const arrived: { event: string; data: string; id: string | undefined }[] = [];
  const parser = createParser({
    onEvent: (message) =>
      arrived.push({ event: message.event ?? 'message', data: message.data, id: message.id }),
  });
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      parser.feed(decoder.decode(value, { stream: true }));
      yield* arrived.splice(0);
    }
  } finally {
    reader.releaseLock();
  }
}

/** What a streamed execution sends, in order: output as it is written, images, then the result. */
export type ExecutionEvent =
  | { type: 'stdout' | 'stderr'; text: string }
  | { type: 'image'; image: Image }
  | { type: 'result'; execution: Execution | ShellExecution };

const DEFAULT_SUBSCRIPTION = '00000000-0000-0000-0000-000000000000';
const POOLS_PATH =
  '/subscriptions/{subscription}/resourceGroups/{resourceGroup}/providers/Microsoft.App/sessionPools/{name}';
const ENDPOINT = '/subscriptions/{subscription}/resourceGroups/{resourceGroup}/sessionPools/{pool}';

/**
 * Unwraps an openapi-fetch result: the data, or the server's error as an {@link ApiError}. File
 * routes document the legacy envelopes too; the SDK sends a current api-version, so it casts their
 * answers to the current shape.
 */
function ok<T>(result: { data?: T; error?: unknown; response: Response }): T {
  if (!result.response.ok) throw apiErrorFrom(result.response, result.error);
  return result.data as T;
}

/** GETs an absolute URL the server handed out (nextLink, operation status), on the client's base URL. */
async function followLink<T>(client: SandpoolClient, link: string): Promise<T> {
  const url = new URL(link);
  const result = await client.api.request(
    'get',
    url.pathname as never,
    {
      querySerializer: () => url.search.slice(1),
    } as never,
  );
  return ok(result as { data?: T; error?: unknown; response: Response });
}

/** Every item of a paged list, following `nextLink`. */
async function allPages<T>(client: SandpoolClient, page: { value: T[]; nextLink?: string }): Promise<T[]> {
  const items = [...page.value];
  while (page.nextLink) {
    page = await followLink<typeof page>(client, page.nextLink);
    items.push(...page.value);
  }
  return items;
}

export class SandpoolClient {
  /** The management plane: create, read, update, delete pools. */
  readonly pools: Pools;
  /** API keys (long-lived, revocable). */
  readonly keys: Keys;
  /** Short-lived tokens carrying some of the caller's roles. */
  readonly tokens: Tokens;
  /** Who changed what and ran code where. */
  readonly audit: Audit;
  /** The server processes sharing the store, and draining one. */
  readonly nodes: Nodes;
  /** @internal */
  readonly api: Client<paths>;
  /** @internal */
  readonly scope: { subscription: string; resourceGroup: string };
  /** @internal */
  readonly versions: { management: ManagementApiVersion; data: DataApiVersion };
  /** @internal */
  readonly pollIntervalMs: number;
  /** @internal */
  readonly baseUrl: string;
  /** @internal A fetch with the caller's credential and no retries. */
  readonly authorizedFetch: (url: string, init: RequestInit) => Promise<Response>;

  constructor(options: SandpoolClientOptions) {
    const baseFetch = options.fetch ?? globalThis.fetch.bind(globalThis);
    // Without retries the wrapper still turns connection failures into ConnectionError.
    const fetchWithRetry = retryingFetch(options.retry === false ? { retries: 0 } : (options.retry ?? {}), {
      fetch: baseFetch,
      sleep,
      random: Math.random,
    });
    this.baseUrl = options.endpoint.replace(/\/+$/, '');
    this.api = createClient<paths>({ baseUrl: this.baseUrl, fetch: fetchWithRetry });
    const credential = options.credential;
    this.authorizedFetch = async (url, init) => {
      const headers = new Headers(init.headers);
      headers.set(
        'authorization',
        `Bearer ${typeof credential === 'string' ? credential : await credential()}`,
      );
      return baseFetch(url, { ...init, headers });
    };
    this.api.use({
      async onRequest({ request }) {
        const secret = typeof credential === 'string' ? credential : await credential();
        request.headers.set('authorization', `Bearer ${secret}`);
        return request;
      },
    });
    this.scope = {
      subscription: options.subscription ?? DEFAULT_SUBSCRIPTION,
      resourceGroup: options.resourceGroup ?? 'sandpool',
    };
    this.versions = {
      management: options.managementApiVersion ?? '2025-07-01',
      data: options.dataApiVersion ?? '2025-10-02-preview',
    };
    this.pollIntervalMs = options.pollIntervalMs ?? 500;
    this.pools = new Pools(this);
    this.keys = new Keys(this);
    this.tokens = new Tokens(this);
    this.audit = new Audit(this);
    this.nodes = new Nodes(this);
  }

  /** A pool's data plane, by pool name. */
  pool(name: string): Pool {
    return new Pool(this, name);
  }

  /** Whether the server answers its health probe. */
  async healthy(): Promise<boolean> {
    const result = await this.api.GET('/healthz');
    return result.response.ok;
  }

  /**
   * Usage over a window (default the last 30 days), summed by pool or by a pool tag (`tag:costCenter`).
   * @example
   * const { value } = await client.usage({ by: 'tag:costCenter', since: '2026-11-01T00:00:00Z' });
   */
  async usage(query: { since?: string; until?: string; by?: string } = {}) {
    return ok(await this.api.GET('/sandpool/usage', { params: { query } }));
  }

  /** Who the credential is and the roles it holds. */
  async whoami(): Promise<Principal> {
    return ok(await this.api.GET('/sandpool/whoami'));
  }

  /** The server's readiness checks (store, runtime, every pool's warm target), ready or not. */
  async readiness(): Promise<Readiness> {
    const result = await this.api.GET('/readyz');
    if (result.response.status === 503) return result.error as Readiness;
    return ok(result);
  }
}

export class Pools {
  /** @internal Reached through {@link SandpoolClient}. */
  constructor(private readonly client: SandpoolClient) {}

  private path(name: string) {
    return { ...this.client.scope, name };
  }

  private get query() {
    return { 'api-version': this.client.versions.management };
  }

  /** Every pool of the resource group (or of the subscription with `{ allResourceGroups: true }`). */
  async list(options: { allResourceGroups?: boolean } = {}): Promise<SessionPool[]> {
    const first = options.allResourceGroups
      ? await this.client.api.GET('/subscriptions/{subscription}/providers/Microsoft.App/sessionPools', {
          params: { path: { subscription: this.client.scope.subscription }, query: this.query },
        })
      : await this.client.api.GET(
          '/subscriptions/{subscription}/resourceGroups/{resourceGroup}/providers/Microsoft.App/sessionPools',
          { params: { path: this.client.scope, query: this.query } },
        );
    return allPages(this.client, ok(first));
  }

  async get(name: string): Promise<SessionPool> {
    return ok(
      await this.client.api.GET(POOLS_PATH, { params: { path: this.path(name), query: this.query } }),
    );
  }

  /**
   * Creates the pool, or replaces its definition. `definition` is either plain {@link PoolOptions}
   * or a full ARM `SessionPool` body. Waits for the operation unless `wait: false`.
   */
  async createOrUpdate(
    name: string,
    definition: PoolOptions | SessionPool,
    options: WaitOption = {},
  ): Promise<SessionPool> {
    const body = 'properties' in definition ? definition : poolDefinition(definition);
    const result = await this.client.api.PUT(POOLS_PATH, {
      params: { path: this.path(name), query: this.query },
      body,
    });
    const pool = ok(result);
    if (options.wait === false) return pool;
    await this.waitFor(
      result.response,
      options.onProgress && (() => this.get(name).then(options.onProgress)),
    );
    return this.get(name);
  }

  /** Applies a JSON merge patch to the pool's resource, e.g. `{ properties: { scaleConfiguration: { maxConcurrentSessions: 20 } } }`. */
  async update(name: string, patch: Record<string, unknown>, options: WaitOption = {}): Promise<SessionPool> {
    const result = await this.client.api.PATCH(POOLS_PATH, {
      params: { path: this.path(name), query: this.query },
      body: patch,
    });
    const pool = ok(result);
    if (options.wait === false) return pool;
    await this.waitFor(
      result.response,
      options.onProgress && (() => this.get(name).then(options.onProgress)),
    );
    return this.get(name);
  }

  /** Deletes the pool; its sessions end. Deleting a pool that does not exist is not an error. */
  async delete(name: string, options: WaitOption = {}): Promise<void> {
    const result = await this.client.api.DELETE(POOLS_PATH, {
      params: { path: this.path(name), query: this.query },
    });
    ok(result);
    if (options.wait !== false && result.response.status === 202) await this.waitFor(result.response);
  }

  /** The pool's lifecycle events (ready, allocated, ended with its reason, startFailed), oldest first. */
  async events(
    name: string,
    filters: { types?: string[]; identifier?: string; since?: string } = {},
  ): Promise<PoolEvent[]> {
    const first = await this.client.api.GET(`${POOLS_PATH}/events`, {
      params: {
        path: this.path(name),
        query: {
          ...this.query,
          ...(filters.types && { type: filters.types.join(',') }),
          ...(filters.identifier !== undefined && { identifier: filters.identifier }),
          ...(filters.since !== undefined && { since: filters.since }),
        },
      },
    });
    // The JSON page; the same route's other media type is the live stream, which this does not ask for.
    return allPages(this.client, ok(first) as { value: PoolEvent[]; nextLink?: string });
  }

  /** The pool's last hour minute by minute: allocations (p50/p99 ms), executions, ends, pool-full refusals. */
  /**
   * The key of the pool's platform MCP server (Azure's, enabled with `mcpServerSettings`), made on
   * first fetch; with `rotate`, a new one, and the old one stops working at once. Needs Contributor.
   */
  async mcpServerKey(name: string, options: { rotate?: boolean } = {}): Promise<string> {
    const action = options.rotate
      ? `${POOLS_PATH}/rotateMcpServerCredentials`
      : `${POOLS_PATH}/fetchMcpServerCredentials`;
    return ok(
      await this.client.api.POST(action as `${typeof POOLS_PATH}/fetchMcpServerCredentials`, {
        params: { path: this.path(name), query: this.query },
      }),
    ).apiKey;
  }

  async timeline(name: string, options: { minutes?: number } = {}): Promise<PoolTimeline> {
    return ok(
      await this.client.api.GET(`${POOLS_PATH}/timeline`, {
        params: { path: this.path(name), query: { ...this.query, ...options } },
      }),
    );
  }

  /**
   * The pool's events as they happen (after `after`, an event id, when given), until `signal`
   * aborts. A dropped stream is resumed where it stopped, so no event is missed or repeated;
   * refusals (401, 403, 404) end the iteration with an {@link ApiError}.
   * @example
   * for await (const event of client.pools.watchEvents('default', { signal })) console.log(event.type);
   */
  async *watchEvents(
    name: string,
    options: { after?: string; types?: string[]; signal?: AbortSignal; reconnectDelayMs?: number } = {},
  ): AsyncGenerator<PoolEvent> {
    let lastId = options.after;
    while (!options.signal?.aborted) {
      try {
        const result = await this.client.api.GET(`${POOLS_PATH}/events`, {
          params: {
            path: this.path(name),
            query: { ...this.query, ...(options.types && { type: options.types.join(',') }) },
            header: { ...(lastId !== undefined && { 'last-event-id': lastId }) },
          },
          headers: { accept: 'text/event-stream' },
          parseAs: 'stream',
          ...(options.signal && { signal: options.signal }),
        });
        const body = ok(result) as unknown as ReadableStream<Uint8Array> | null;
        if (!body) throw new Error('the event stream has no body');
        for await (const message of serverSentEvents(body)) {
          const event = JSON.parse(message.data) as PoolEvent;
          lastId = event.id;
          yield event;
        }
      } catch (error) {
        if (options.signal?.aborted) return;
        if (!(error instanceof ConnectionError) && !(error instanceof TypeError)) throw error;
      }
      // The server closed the stream (a restart) or the connection dropped: resume after a pause.
      await sleep(options.reconnectDelayMs ?? 1000);
    }
  }

  /** Polls the operation named by `Azure-AsyncOperation` until it succeeds; throws if it fails. */
  private async waitFor(response: Response, poll?: () => Promise<void>): Promise<void> {
    const url = response.headers.get('azure-asyncoperation');
    if (!url) return;
    for (;;) {
      await poll?.();
      const status = await followLink<{
        name: string;
        status: string;
        error?: { code: string; message: string };
      }>(this.client, url);
      if (status.status === 'Succeeded') return;
      if (status.status === 'Failed') {
        throw new OperationFailedError(
          status.name,
          status.error?.code,
          status.error?.message ?? `operation ${status.name} failed`,
        );
      }
      await sleep(this.client.pollIntervalMs);
    }
  }
}

/** A pool's data plane: its sessions by identifier, the sessions list, and its runtime metadata. */
export class Pool {
  /** @internal Reached through {@link SandpoolClient}. */
  constructor(
    private readonly client: SandpoolClient,
    readonly name: string,
  ) {}

  /** The session named `identifier`; created by the server on its first request. */
  session(identifier: string): Session {
    return new Session(this.client, this.name, identifier);
  }

  /**
   * Where the pool's Sandpool MCP server answers (Streamable HTTP; send this client's credential as
   * `Authorization: Bearer`). See docs/mcp.md.
   */
  get mcpUrl(): string {
    const { subscription, resourceGroup } = this.client.scope;
    return `${this.client.baseUrl}/subscriptions/${subscription}/resourceGroups/${resourceGroup}/sessionPools/${encodeURIComponent(this.name)}/mcp`;
  }

  /** Every live session of the pool, oldest first. */
  async sessions(): Promise<SessionInfo[]> {
    const sessions: SessionInfo[] = [];
    for (let skip = 0; ;) {
      const page = ok(
        await this.client.api.GET(`${ENDPOINT}/listSessions`, {
          params: {
            path: { ...this.client.scope, pool: this.name },
            query: { 'api-version': this.client.versions.data, skip },
          },
        }),
      );
      sessions.push(...page.sessions);
      if (!page.nextLink) return sessions;
      skip += page.sessions.length;
    }
  }

  /** The pool's runtimes and pre-installed packages. */
  async metadata() {
    return ok(
      await this.client.api.GET(`${ENDPOINT}/metadata`, {
        params: {
          path: { ...this.client.scope, pool: this.name },
          query: { 'api-version': this.client.versions.data },
        },
      }),
    );
  }
}

/** One session: state (variables, files) persists across its requests until it ends. */
export class Session {
  /** The session's `/mnt/data`. */
  readonly files: Files;
  /** Commands the session runs in the background (a Sandpool extension). */
  readonly processes: Processes;

  /** @internal Reached through {@link SandpoolClient}. */
  constructor(
    private readonly client: SandpoolClient,
    readonly pool: string,
    readonly identifier: string,
  ) {
    this.files = new Files(client, this.params.bind(this));
    this.processes = new Processes(client, this.params.bind(this));
  }

  private params() {
    return {
      path: { ...this.client.scope, pool: this.pool },
      query: { 'api-version': this.client.versions.data, identifier: this.identifier },
    };
  }

  /**
   * Runs code in a code-interpreter pool's session: Python, or JavaScript in a NodeLTS pool.
   * @example
   * const run = await client.pool('default').session('user-42').execute('6 * 7');
   * run.result?.executionResult; // 42
   */
  async execute(code: string, options: ExecuteOptions = {}): Promise<Execution> {
    return (await this.post({ code }, options)) as Execution;
  }

  /**
   * Runs a command line in a Shell pool's session; `status` holds the exit code as a string.
   * @example
   * const run = await client.pool('shell').session('job-1').run('ls -l | wc -l');
   * run.result?.exitCode; // 0
   */
  async run(
    shellCommand: string,
    options: ExecuteOptions & { shellType?: 'bash' | 'sh' } = {},
  ): Promise<ShellExecution> {
    const { shellType, ...rest } = options;
    return (await this.post({ shellCommand, ...(shellType && { shellType }) }, rest)) as ShellExecution;
  }

  /**
   * Runs code (or, with `shellCommand`, a Shell pool's command line) and yields its output as the
   * code writes it, its images, and last its result: Sandpool's event stream for a synchronous run.
   * A client that stops reading does not stop the run.
   * @example
   * for await (const event of session.stream('for i in range(3): print(i)')) {
   *   if (event.type === 'stdout') process.stdout.write(event.text);
   * }
   */
  async *stream(
    code: string,
    options: Omit<ExecuteOptions, 'async' | 'onStdout' | 'onStderr' | 'onImage'> & {
      shellCommand?: boolean;
    } = {},
  ): AsyncGenerator<ExecutionEvent> {
    const { shellCommand, ...rest } = options;
    const result = await this.client.api.POST(`${ENDPOINT}/executions`, {
      ...this.request(shellCommand ? { shellCommand: code } : { code }, rest),
      headers: { accept: 'text/event-stream' },
      parseAs: 'stream',
    });
    const body = ok(result) as unknown as ReadableStream<Uint8Array> | null;
    if (!body) throw new Error('the execution stream has no body');
    for await (const message of serverSentEvents(body)) {
      const data = JSON.parse(message.data) as Record<string, unknown>;
      if (message.event === 'stdout' || message.event === 'stderr') {
        yield { type: message.event, text: String(data.text) };
      } else if (message.event === 'image') {
        yield { type: 'image', image: data as unknown as Image };
      } else if (message.event === 'result') {
        yield { type: 'result', execution: data as unknown as Execution };
      } else if (message.event === 'error') {
        const error = data.error as { code: string; message: string };
        throw apiErrorFrom(result.response, { error });
      }
    }
  }

  private async post(command: Record<string, string>, options: ExecuteOptions) {
    if (options.onStdout || options.onStderr || options.onImage) {
      for await (const event of this.stream(command.code ?? command.shellCommand ?? '', {
        ...options,
        shellCommand: command.shellCommand !== undefined,
      })) {
        if (event.type === 'image') options.onImage?.(event.image);
        else if (event.type === 'result') return event.execution;
        else if (event.type === 'stdout') options.onStdout?.(event.text);
        else options.onStderr?.(event.text);
      }
      throw new Error('the execution stream ended without a result');
    }
    return ok(await this.client.api.POST(`${ENDPOINT}/executions`, this.request(command, options)));
  }

  /** The parameters and body of `POST executions`. */
  private request(command: Record<string, string>, options: ExecuteOptions) {
    return {
      params: {
        ...this.params(),
        ...(options.operationId && { header: { 'operation-id': options.operationId } }),
      },
      body: {
        ...command,
        executionType: options.async ? ('Asynchronous' as const) : ('Synchronous' as const),
        ...(options.timeoutInSeconds !== undefined && { timeoutInSeconds: options.timeoutInSeconds }),
        ...(options.outputStreamsMaxLength !== undefined && {
          outputStreamsMaxLength: options.outputStreamsMaxLength,
        }),
      },
      ...(options.signal && { signal: options.signal }),
    };
  }

  /** An execution by id (e.g. one started with `async: true`). */
  async getExecution(executionId: string): Promise<Execution | ShellExecution> {
    const { path, query } = this.params();
    return ok(
      await this.client.api.GET(`${ENDPOINT}/executions/{executionId}`, {
        params: { path: { ...path, executionId }, query },
      }),
    );
  }

  /** The live session, or `undefined` if none has this identifier. */
  async info(): Promise<SessionInfo | undefined> {
    const result = await this.client.api.GET(`${ENDPOINT}/session`, { params: this.params() });
    if (result.response.status === 404) return undefined;
    return ok(result);
  }

  /** Ends the session now and frees its slot; the next request starts a fresh one. */
  async stop(): Promise<void> {
    ok(await this.client.api.DELETE(`${ENDPOINT}/session`, { params: this.params() }));
  }

  /** A custom container session's console output: its live session's, else its last one's. */
  async logs(options: { tail?: number } = {}): Promise<ConsoleLog> {
    const { path, query } = this.params();
    return ok(
      await this.client.api.GET(`${ENDPOINT}/.management/logs`, {
        params: { path, query: { ...query, ...(options.tail !== undefined && { tail: options.tail }) } },
      }),
    );
  }

  /**
   * A request to a custom container session, sent through the pool's session proxy to the
   * container's target port; `path` is the container's own (e.g. `/api/items?page=2`). Not retried:
   * the container decides what a repeated request means.
   * @example
   * const answer = await client.pool('web').session('user-42').fetch('/health');
   */
  fetch(path: string, init: RequestInit = {}): Promise<Response> {
    const endpoint = ENDPOINT.replace('{subscription}', encodeURIComponent(this.client.scope.subscription))
      .replace('{resourceGroup}', encodeURIComponent(this.client.scope.resourceGroup))
      .replace('{pool}', encodeURIComponent(this.pool));
    const url = new URL(`${this.client.baseUrl}${endpoint}${path.startsWith('/') ? path : `/${path}`}`);
    url.searchParams.set('identifier', this.identifier);
    return this.client.authorizedFetch(url.toString(), init);
  }
}

type FileParams = ReturnType<Session['params']>;

/** Files in the session's `/mnt/data`; `path` names a subdirectory. */
export class Files {
  /** @internal Reached through {@link SandpoolClient}. */
  constructor(
    private readonly client: SandpoolClient,
    private readonly params: () => FileParams,
  ) {}

  private at(options: { path?: string | undefined }) {
    const { path, query } = this.params();
    return { path, query: { ...query, ...(options.path !== undefined && { path: options.path }) } };
  }

  private named(name: string, options: { path?: string | undefined }) {
    const { path, query } = this.at(options);
    return { path: { ...path, name }, query };
  }

  async list(options: { path?: string; recursive?: boolean } = {}): Promise<FileInfo[]> {
    const { path, query } = this.at(options);
    const result = ok(
      await this.client.api.GET(`${ENDPOINT}/files`, {
        params: { path, query: { ...query, ...(options.recursive && { recursive: true }) } },
      }),
    );
    return result.value as FileInfo[];
  }

  /** Uploads `content` as `name` (in `path`, default `/mnt/data` itself). */
  async upload(
    name: string,
    content: Blob | Uint8Array | string,
    options: { path?: string } = {},
  ): Promise<FileInfo> {
    const form = new FormData();
    // A copy of a typed array is backed by a plain ArrayBuffer, which every Blob accepts.
    const part =
      content instanceof Blob
        ? content
        : new Blob([typeof content === 'string' ? content : new Uint8Array(content)]);
    form.append('file', part, name);
    return ok(
      await this.client.api.POST(`${ENDPOINT}/files`, {
        params: this.at(options),
        // The document types the part as a string; the body sent is the form itself.
        body: form as never,
        bodySerializer: () => form,
      }),
    ) as FileInfo;
  }

  async get(name: string, options: { path?: string } = {}): Promise<FileInfo> {
    return ok(
      await this.client.api.GET(`${ENDPOINT}/files/{name}`, { params: this.named(name, options) }),
    ) as FileInfo;
  }

  /** The file's bytes. */
  async download(name: string, options: { path?: string } = {}): Promise<Uint8Array> {
    const result = await this.client.api.GET(`${ENDPOINT}/files/{name}/content`, {
      params: this.named(name, options),
      parseAs: 'arrayBuffer',
    });
    return new Uint8Array(ok<ArrayBuffer>(result));
  }

  async delete(name: string, options: { path?: string } = {}): Promise<void> {
    ok(await this.client.api.DELETE(`${ENDPOINT}/files/{name}`, { params: this.named(name, options) }));
  }
}

/**
 * Background processes of the session: commands that keep running after the request that started
 * them (dev servers, long jobs), within the session's limits, until they exit or the session ends.
 * @example
 * const server = await session.processes.start('python3 -m http.server 8000');
 * const { stdout } = await session.processes.output(server.pid);
 */
export class Processes {
  /** @internal Reached through {@link Session}. */
  constructor(
    private readonly client: SandpoolClient,
    private readonly params: () => FileParams,
  ) {}

  private of(pid: number, query: Record<string, unknown> = {}) {
    const { path, query: base } = this.params();
    return { path: { ...path, pid: String(pid) }, query: { ...base, ...query } };
  }

  /** Starts `command` with `bash -c` (or `sh -c`) in `/mnt/data`; answers at once. */
  async start(command: string, options: { shellType?: 'bash' | 'sh' } = {}): Promise<BackgroundProcess> {
    return ok(
      await this.client.api.POST(`${ENDPOINT}/processes`, {
        params: this.params(),
        body: { command, ...(options.shellType && { shellType: options.shellType }) },
      }),
    );
  }

  /** The session's processes, running and exited. */
  async list(): Promise<BackgroundProcess[]> {
    return ok(await this.client.api.GET(`${ENDPOINT}/processes`, { params: this.params() })).value;
  }

  /** What the process wrote from the offsets on (each stream's `nextOffset` continues), and its state. */
  async output(
    pid: number,
    from: { stdoutOffset?: number; stderrOffset?: number; maxChars?: number } = {},
  ): Promise<ProcessOutput> {
    return ok(
      await this.client.api.GET(`${ENDPOINT}/processes/{pid}/output`, { params: this.of(pid, from) }),
    );
  }

  /** Writes `text` to the process's stdin; `close` ends its input. */
  async write(pid: number, text: string, options: { close?: boolean } = {}): Promise<BackgroundProcess> {
    return ok(
      await this.client.api.POST(`${ENDPOINT}/processes/{pid}/stdin`, {
        params: this.of(pid),
        body: { text, ...(options.close && { close: true }) },
      }),
    );
  }

  /** Sends `signal` (default TERM) to the process and everything it started. */
  async kill(pid: number, signal?: 'TERM' | 'KILL' | 'INT' | 'HUP'): Promise<BackgroundProcess> {
    return ok(
      await this.client.api.POST(`${ENDPOINT}/processes/{pid}/kill`, {
        params: this.of(pid, signal ? { signal } : {}),
      }),
    );
  }
}

export class Keys {
  /** @internal Reached through {@link SandpoolClient}. */
  constructor(private readonly client: SandpoolClient) {}

  /** Creates a key; the returned `key` is the secret, shown this once. */
  async create(options: { name?: string; roles: string[] }) {
    return ok(await this.client.api.POST('/sandpool/apiKeys', { body: options }));
  }

  async list(): Promise<ApiKey[]> {
    return ok(await this.client.api.GET('/sandpool/apiKeys')).value;
  }

  async revoke(id: string): Promise<ApiKey> {
    return ok(await this.client.api.DELETE('/sandpool/apiKeys/{id}', { params: { path: { id } } }));
  }
}

export class Audit {
  /** @internal Reached through {@link SandpoolClient}. */
  constructor(private readonly client: SandpoolClient) {}

  /** Audit entries, oldest first, narrowed by time (ISO 8601), principal, action and pool. */
  async list(
    query: { since?: string; until?: string; principal?: string; action?: string; pool?: string } = {},
  ): Promise<AuditEntry[]> {
    return allPages(this.client, ok(await this.client.api.GET('/sandpool/audit', { params: { query } })));
  }
}

export class Nodes {
  /** @internal Reached through {@link SandpoolClient}. */
  constructor(private readonly client: SandpoolClient) {}

  /** Every node, with its lease; the node answering adds what it holds. */
  async list(): Promise<NodeInfo[]> {
    return ok(await this.client.api.GET('/sandpool/nodes')).value;
  }

  /** Drains the node named `name` (send it to that node): it starts nothing new; poll until `drained`. */
  async drain(name: string): Promise<NodeInfo> {
    return ok(await this.client.api.POST('/sandpool/nodes/{name}/drain', { params: { path: { name } } }));
  }
}

export class Tokens {
  /** @internal Reached through {@link SandpoolClient}. */
  constructor(private readonly client: SandpoolClient) {}

  /** Mints a token with `roles` (default: all of the caller's) that expires after `expiresInSeconds` (default 3600). */
  async create(options: { roles?: string[]; expiresInSeconds?: number } = {}) {
    return ok(await this.client.api.POST('/sandpool/tokens', { body: options }));
  }
}
