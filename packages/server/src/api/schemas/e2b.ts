/**
 * @module api/schemas/e2b
 * E2B's API, as its SDKs call it (docs/e2b.md): the control plane (`/sandboxes` and
 * `/v2/sandboxes`, with `X-API-KEY`) and a sandbox's own routes (envd's files and health, the code
 * interpreter), which E2B's SDKs address by header or host name (api/e2b/sandbox-routing) and the
 * router takes below `/e2b/sandbox/{port}`. Errors are E2B's body; envd's Connect services answer
 * Connect's.
 */

import { Type } from 'typebox';

import { NoContent, route } from './common.js';

const tag = 'E2B' as const;
const SandboxParams = Type.Object({
  sandboxID: Type.String({ description: 'The sandbox (a session identifier).' }),
});

const Metadata = Type.Record(Type.String(), Type.String());

export const NewSandbox = Type.Object(
  {
    templateID: Type.String({ description: 'A pool of the E2B resource group, by name.' }),
    timeout: Type.Optional(
      Type.Integer({ minimum: 0, description: 'Seconds the sandbox lives (default 300).' }),
    ),
    metadata: Type.Optional(Metadata),
    envVars: Type.Optional(Metadata),
    allow_internet_access: Type.Optional(Type.Boolean()),
    secure: Type.Optional(Type.Boolean()),
    autoPause: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: true },
);

const Sandbox = Type.Object({
  sandboxID: Type.String(),
  templateID: Type.String(),
  clientID: Type.String(),
  envdVersion: Type.String(),
  envdAccessToken: Type.String(),
  trafficAccessToken: Type.String(),
  domain: Type.Union([Type.String(), Type.Null()]),
});

const ListedSandbox = Type.Object({
  sandboxID: Type.String(),
  templateID: Type.String(),
  clientID: Type.String(),
  startedAt: Type.String(),
  endAt: Type.String(),
  state: Type.Union([Type.Literal('running'), Type.Literal('paused')]),
  cpuCount: Type.Number(),
  memoryMB: Type.Number(),
  diskSizeMB: Type.Number(),
  envdVersion: Type.String(),
  metadata: Metadata,
});

const SandboxDetail = Type.Object({
  ...ListedSandbox.properties,
  envdAccessToken: Type.String(),
  domain: Type.Union([Type.String(), Type.Null()]),
  allowInternetAccess: Type.Boolean(),
});

const SandboxMetric = Type.Object({
  timestamp: Type.String(),
  timestampUnix: Type.Integer(),
  cpuCount: Type.Number(),
  cpuUsedPct: Type.Number(),
  memUsed: Type.Number(),
  memTotal: Type.Number(),
  memCache: Type.Number(),
  diskUsed: Type.Number(),
  diskTotal: Type.Number(),
});

const Timeout = Type.Object({ timeout: Type.Integer({ minimum: 0 }) });
const Connect = Type.Object({ timeout: Type.Optional(Type.Integer({ minimum: 0 })) });
const ListQuery = Type.Object({
  metadata: Type.Optional(Type.String({ description: 'URL-encoded `k=v&k2=v2`; every pair must match.' })),
  state: Type.Optional(Type.String({ description: 'Comma-separated: running, paused.' })),
  template: Type.Optional(Type.String({ description: 'Only sandboxes of this template.' })),
  startedAfter: Type.Optional(
    Type.String({ description: 'Only sandboxes started after this time (RFC 3339).' }),
  ),
  order: Type.Optional(
    Type.Union([Type.Literal('asc'), Type.Literal('desc')], {
      description: 'By start time; asc when not given.',
    }),
  ),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
  nextToken: Type.Optional(Type.String()),
});

/** The control plane: every route for any credential, each narrowed to the pools its role reaches. */
const control = { tag, access: 'caller' as const, wire: 'e2b' as const };

export const e2bRoutes = {
  create: (version: 'v1' | 'v2') =>
    route({
      ...control,
      operationId: version === 'v2' ? 'E2b_CreateSandboxV2' : 'E2b_CreateSandbox',
      summary: 'Create a sandbox: a session of the template’s pool (Session Executor on it)',
      session: 'creates',
      audit: 'e2b.create',
      body: NewSandbox,
      response: { 201: Sandbox },
    }),
  list: (version: 'v1' | 'v2') =>
    route({
      ...control,
      operationId: version === 'v2' ? 'E2b_ListSandboxesV2' : 'E2b_ListSandboxes',
      summary: 'List the running sandboxes of the pools the caller may read',
      querystring: ListQuery,
      response: { 200: Type.Array(ListedSandbox) },
    }),
  get: route({
    ...control,
    operationId: 'E2b_GetSandbox',
    summary: 'A sandbox',
    session: 'reaches',
    params: SandboxParams,
    response: { 200: SandboxDetail },
  }),
  kill: route({
    ...control,
    operationId: 'E2b_KillSandbox',
    summary: 'End a sandbox (reason stopped); its open streams are reset',
    session: 'reaches',
    audit: 'e2b.kill',
    params: SandboxParams,
    response: { 204: NoContent('Ended.') },
  }),
  timeout: route({
    ...control,
    operationId: 'E2b_SetTimeout',
    summary: 'Make the sandbox end this many seconds from now',
    session: 'reaches',
    audit: 'e2b.timeout',
    params: SandboxParams,
    body: Timeout,
    response: { 204: NoContent('Its end moved.') },
  }),
  connect: (version: 'v1' | 'v2') =>
    route({
      ...control,
      operationId: version === 'v2' ? 'E2b_ConnectV2' : 'E2b_Connect',
      summary: 'Connect to a running sandbox; a timeout given extends its life, never shortens it',
      session: 'reaches',
      params: SandboxParams,
      body: Connect,
      response: { 200: Sandbox },
    }),
  pause: route({
    ...control,
    operationId: 'E2b_Pause',
    summary: 'Not supported yet: answers 501',
    params: SandboxParams,
    response: { 501: Type.Ref('E2bErrorResponse') },
  }),
  resume: route({
    ...control,
    operationId: 'E2b_Resume',
    summary: 'Not supported yet: answers 501',
    params: SandboxParams,
    response: { 501: Type.Ref('E2bErrorResponse') },
  }),
  metrics: route({
    ...control,
    operationId: 'E2b_Metrics',
    summary: 'The sandbox’s CPU, memory and disk, sampled every 5 s, within start and end',
    session: 'reaches',
    params: SandboxParams,
    querystring: Type.Object({ start: Type.Optional(Type.Integer()), end: Type.Optional(Type.Integer()) }),
    response: { 200: Type.Array(SandboxMetric) },
  }),
};

/** A sandbox's own routes: its token, its session reached where it is held. */
const own = { tag, access: 'sandbox' as const, session: 'reaches' as const, wire: 'e2b' as const };
/** A sandbox's own routes that also take its traffic token. */
const ownTraffic = { ...own, access: 'sandboxTraffic' as const };

/** `/files`: a file's bytes (gzip when asked), or files written from a multipart body or the body itself. */
function filesRoute(method: 'get' | 'post', operationId: string) {
  return method === 'get'
    ? route({
        ...own,
        operationId,
        summary: 'A file’s bytes (gzip when asked)',
        querystring: Type.Object({ path: Type.String(), username: Type.Optional(Type.String()) }),
        response: { 200: { description: 'The file’s bytes.' } },
      })
    : route({
        ...own,
        operationId,
        summary: 'Write files: multipart (part `file`, its filename the path) or the body itself',
        audit: 'e2b.files.write',
        querystring: Type.Object({
          path: Type.Optional(Type.String()),
          username: Type.Optional(Type.String()),
        }),
        response: {
          200: Type.Array(
            Type.Object({ name: Type.String(), type: Type.Literal('file'), path: Type.String() }),
          ),
        },
      });
}

export const sandboxRoutes = {
  /** One of envd's Connect methods (api/e2b/envd-services), by its service and method. */
  rpc: (service: string, method: string, streams: boolean, changes: boolean) =>
    route({
      ...own,
      wire: 'connect',
      ...(changes && { audit: `e2b.${service}.${method}` }),
      operationId: `E2b_Envd_${service}_${method}`,
      summary: `envd's ${service}.${method} (Connect, JSON codec${streams ? ', server stream' : ''})`,
      response: { 200: { description: 'Connect’s answer.' } },
    }),
  envdHealth: route({
    ...own,
    operationId: 'E2b_EnvdHealth',
    summary: 'envd answers (204); 502 for a sandbox that does not run',
    response: { 204: NoContent('It runs.') },
  }),
  download: filesRoute('get', 'E2b_FilesGet'),
  upload: filesRoute('post', 'E2b_FilesPost'),
  /** The same, at `/files` with no sandbox named: a URL E2B's SDKs signed for one sandbox URL. */
  signedDownload: filesRoute('get', 'E2b_SignedFilesGet'),
  signedUpload: filesRoute('post', 'E2b_SignedFilesPost'),
  /** Any other port: what the sandbox's programs serve there (api/e2b/port-routes). */
  port: route({
    ...ownTraffic,
    operationId: 'E2b_SandboxPort',
    summary: 'A request to a program the sandbox runs, on its port (its traffic or access token)',
    response: { 200: { description: 'The program’s answer, as it gave it.' } },
  }),
};

const Context = Type.Object({ id: Type.String(), language: Type.String(), cwd: Type.String() });
const ContextParams = Type.Object({ contextId: Type.String() });

/** The code interpreter's routes (E2B's port 49999): code runs and their contexts. */
export const interpreterRoutes = {
  execute: route({
    ...own,
    operationId: 'E2b_Execute',
    summary: 'Run code in a context (the default Python one unless named), streamed as NDJSON lines',
    audit: 'e2b.execute',
    body: Type.Object({
      code: Type.String(),
      context_id: Type.Optional(Type.String()),
      language: Type.Optional(Type.String()),
      env_vars: Type.Optional(Metadata),
    }),
    response: {
      200: {
        description:
          'One JSON object a line: stdout, stderr, result (MIME bundles), error, number_of_executions, end_of_execution.',
      },
    },
  }),
  createContext: route({
    ...ownTraffic,
    operationId: 'E2b_CreateContext',
    summary: 'A new context: a namespace of its own, in `cwd` (home when not given)',
    audit: 'e2b.context.create',
    body: Type.Object({ language: Type.Optional(Type.String()), cwd: Type.Optional(Type.String()) }),
    response: { 200: Context },
  }),
  listContexts: route({
    ...ownTraffic,
    operationId: 'E2b_ListContexts',
    summary: 'The sandbox’s contexts, the default one included',
    response: { 200: Type.Array(Context) },
  }),
  removeContext: route({
    ...ownTraffic,
    operationId: 'E2b_RemoveContext',
    summary: 'Remove a context (the default one is emptied instead)',
    audit: 'e2b.context.remove',
    params: ContextParams,
    response: { 200: NoContent('Removed.') },
  }),
  restartContext: route({
    ...ownTraffic,
    operationId: 'E2b_RestartContext',
    summary: 'Start a context afresh: its names and its count are gone',
    audit: 'e2b.context.restart',
    params: ContextParams,
    response: { 200: NoContent('Restarted.') },
  }),
  health: route({
    ...ownTraffic,
    operationId: 'E2b_InterpreterHealth',
    summary: 'The code interpreter answers',
    response: { 200: { description: '"OK".' } },
  }),
};
