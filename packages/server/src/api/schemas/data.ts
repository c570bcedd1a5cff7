/**
 * @module api/schemas/data
 * The pool endpoint (data plane): executions, files and sessions in the current generation's shapes
 * (api-version 2024-10-02-preview and later), plus the legacy routes older clients still call.
 */

import { Type, type TSchema } from 'typebox';

import { DataQuery, NoContent, PoolEndpointParams, route } from './common.js';

const Query = Type.Object(DataQuery);
const Image = Type.Object({
  type: Type.Literal('image'),
  format: Type.Literal('png'),
  base64_data: Type.String(),
});
const ExecutionError = Type.Object({ code: Type.String(), message: Type.String() });
const Primitive = Type.Union([Type.String(), Type.Number(), Type.Boolean(), Type.Null()]);
const ExecutionType = Type.Union([Type.Literal('Synchronous'), Type.Literal('Asynchronous')]);

export const ExecutionRequest = Type.Object(
  {
    code: Type.Optional(Type.String({ description: 'Python code (code-interpreter pools).' })),
    shellCommand: Type.Optional(
      Type.String({ description: 'A command line (Shell pools), run with `bash -c` in /mnt/data.' }),
    ),
    shellType: Type.Optional(Type.Union([Type.Literal('bash'), Type.Literal('sh')])),
    codeInputType: Type.Optional(
      Type.String({ enum: ['Inline', 'InlineBase64', 'InlineText'], description: 'Any case.' }),
    ),
    executionType: Type.Optional(
      Type.String({ enum: ['Synchronous', 'Asynchronous'], description: 'Any case.' }),
    ),
    timeoutInSeconds: Type.Optional(
      Type.Integer({ minimum: 1, maximum: 220, description: 'Default 120 (Python) or 180 (Shell).' }),
    ),
    outputStreamsMaxLength: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: 1_000_000,
        description: 'stdout and stderr are each cut to this length; default 4096.',
      }),
    ),
  },
  {
    $id: 'ExecutionRequest',
    additionalProperties: true,
    description: 'Flat, or wrapped in `properties` as the az CLI sends it.',
  },
);

/** A code-interpreter pool's `SessionCodeExecutionResource`. */
/** Which fields of a result were cut to their bound; absent when none was. */
const Truncated = Type.Optional(
  Type.Array(Type.String(), {
    description:
      'Fields cut to their bound: `stdout`, `stderr` and `executionResult` at outputStreamsMaxLength, `error` at 4 KiB, `images` at 16 or 8 MiB.',
  }),
);

export const Execution = Type.Object(
  {
    id: Type.String(),
    identifier: Type.String(),
    executionType: ExecutionType,
    status: Type.Union([Type.Literal('Running'), Type.Literal('Succeeded'), Type.Literal('Failed')]),
    result: Type.Union([
      Type.Null(),
      Type.Object({
        stdout: Type.String(),
        stderr: Type.String(),
        executionResult: Type.Union([Primitive, Image], {
          description: 'The last expression’s value, else the first image.',
        }),
        executionTimeInMilliseconds: Type.Integer(),
        outputStreamsMaxLength: Type.Integer(),
        images: Type.Array(Image),
        truncated: Truncated,
      }),
    ]),
    error: Type.Optional(ExecutionError),
  },
  { $id: 'Execution' },
);

/** A Shell pool's execution: the exit status, as a string, in `status`. */
export const ShellExecution = Type.Object(
  {
    id: Type.String(),
    identifier: Type.String(),
    executionType: ExecutionType,
    status: Type.String({
      description: '`Running`, else the exit status as a string ("0"); 124 after a timeout.',
    }),
    result: Type.Union([
      Type.Null(),
      Type.Object({
        stdout: Type.String(),
        stderr: Type.String(),
        exitCode: Type.Integer(),
        executionTimeInMilliseconds: Type.Integer(),
        outputStreamsMaxLength: Type.Integer(),
        truncated: Truncated,
      }),
    ]),
    error: Type.Optional(ExecutionError),
  },
  { $id: 'ShellExecution' },
);

const AnyExecution = Type.Union([Type.Ref('Execution'), Type.Ref('ShellExecution')]);

export const File = Type.Object(
  {
    name: Type.String(),
    type: Type.Union([Type.Literal('File'), Type.Literal('Directory')]),
    contentType: Type.String(),
    sizeInBytes: Type.Integer(),
    lastModifiedAt: Type.String(),
    directory: Type.String({ examples: ['/mnt/data'] }),
  },
  { $id: 'File' },
);

/**
 * The legacy generation's file list. Each object also carries a `$id` counter, left out here because
 * JSON Schema reads a property named `$id` as a schema id.
 */
const LegacyFileList = Type.Object({
  value: Type.Array(
    Type.Object({
      properties: Type.Object({
        filename: Type.String(),
        size: Type.Integer(),
        lastModifiedTime: Type.String(),
      }),
    }),
  ),
});

const FileList = Type.Object({ value: Type.Array(Type.Ref('File')) });

/** Current shape, or the legacy envelope when the api-version is 2024-02-02-preview or 2024-08-02-preview. */
const inGeneration = (current: TSchema) =>
  Type.Union([current, LegacyFileList], {
    description:
      'The legacy `$id`/`properties` envelope under api-version 2024-02-02-preview and 2024-08-02-preview.',
  });

export const Session = Type.Object(
  {
    identifier: Type.String(),
    createdAt: Type.String(),
    lastAccessedAt: Type.String(),
    expireAt: Type.String({ description: 'When the cooldown (or maxAlivePeriod) ends the session.' }),
    etag: Type.String({ description: 'The sandbox’s id; a new session has a new one.' }),
    executions: Type.Optional(
      Type.Integer({
        description:
          'Sandpool: executions run in the session since its node took it up (given by the node that holds it).',
      }),
    ),
    node: Type.Optional(Type.String({ description: 'Sandpool: the node that holds the session.' })),
    usage: Type.Optional(
      Type.Object(
        {
          cpuSeconds: Type.Number(),
          memoryBytes: Type.Integer(),
          peakMemoryBytes: Type.Integer(),
        },
        {
          description:
            'Sandpool: what the sandbox uses now, from its cgroup (given by the node that holds it).',
        },
      ),
    ),
  },
  { $id: 'Session' },
);

const FileParams = Type.Object({ ...PoolEndpointParams.properties, name: Type.String() });
const PathQuery = Type.Object({
  ...DataQuery,
  path: Type.Optional(Type.String({ description: 'A directory under /mnt/data.' })),
});
const Content = {
  200: {
    description: 'The file’s bytes.',
    content: { 'application/octet-stream': { schema: Type.String({ format: 'binary' }) } },
  },
};

export const dataRoutes = {
  execute: route({
    operationId: 'Executions_Execute',
    access: { action: 'sessions/execute', on: 'pool' },
    session: 'creates',
    summary: 'Run code (or a Shell pool’s command line) in the identifier’s session',
    description:
      'Synchronous runs answer 200 with the result; asynchronous ones 202 with `Operation-Location`. An `operation-id` header makes retries idempotent.',
    tag: 'Executions',
    audit: 'code.execute',
    params: PoolEndpointParams,
    querystring: Query,
    headers: Type.Object({
      'operation-id': Type.Optional(
        Type.String({
          pattern: '^[A-Za-z0-9._-]{1,128}$',
          description:
            'The execution’s id, chosen by the caller: a retry with the same id returns the first run.',
        }),
      ),
    }),
    body: Type.Ref('ExecutionRequest'),
    response: { 200: AnyExecution, 202: AnyExecution },
  }),
  getExecution: route({
    operationId: 'Executions_Get',
    access: { action: 'sessions/execute', on: 'pool' },
    session: 'reaches',
    summary: 'Get an execution',
    tag: 'Executions',
    params: Type.Object({ ...PoolEndpointParams.properties, executionId: Type.String() }),
    querystring: Query,
    response: { 200: AnyExecution },
  }),
  listFiles: route({
    operationId: 'Files_List',
    access: { action: 'sessions/execute', on: 'pool' },
    session: 'creates',
    summary: 'List the files in /mnt/data',
    tag: 'Files',
    params: PoolEndpointParams,
    querystring: Type.Object({ ...PathQuery.properties, recursive: Type.Optional(Type.Boolean()) }),
    response: { 200: inGeneration(FileList) },
  }),
  upload: route({
    operationId: 'Files_Upload',
    access: { action: 'sessions/execute', on: 'pool' },
    session: 'creates',
    summary: 'Upload a file (multipart part `file`; the filename may be `/mnt/data/<name>`)',
    tag: 'Files',
    audit: 'file.upload',
    multipart: true,
    params: PoolEndpointParams,
    querystring: PathQuery,
    response: { 200: inGeneration(Type.Ref('File')) },
  }),
  getFile: route({
    operationId: 'Files_Get',
    access: { action: 'sessions/execute', on: 'pool' },
    session: 'creates',
    summary: 'Get a file’s metadata',
    tag: 'Files',
    params: FileParams,
    querystring: PathQuery,
    response: { 200: inGeneration(Type.Ref('File')) },
  }),
  fileContent: route({
    operationId: 'Files_GetContent',
    access: { action: 'sessions/execute', on: 'pool' },
    session: 'creates',
    summary: 'Download a file',
    tag: 'Files',
    params: FileParams,
    querystring: PathQuery,
    response: Content,
  }),
  deleteFile: route({
    operationId: 'Files_Delete',
    access: { action: 'sessions/execute', on: 'pool' },
    session: 'creates',
    summary: 'Delete a file or an empty directory',
    tag: 'Files',
    audit: 'file.delete',
    params: FileParams,
    querystring: PathQuery,
    response: {
      200: Type.Object({ message: Type.String() }, { description: 'Legacy api-versions.' }),
      204: NoContent('Deleted.'),
    },
  }),
  getSession: route({
    operationId: 'Sessions_Get',
    access: { action: 'sessions/read', on: 'pool' },
    session: 'reaches',
    summary: 'Get the identifier’s live session',
    tag: 'Sessions',
    params: PoolEndpointParams,
    querystring: Query,
    response: { 200: Type.Ref('Session') },
  }),
  deleteSession: route({
    operationId: 'Sessions_Delete',
    access: { action: 'sessions/stop', on: 'pool' },
    session: 'reaches',
    summary: 'End the identifier’s session and free its slot (no error if there is none)',
    tag: 'Sessions',
    audit: 'session.stop',
    params: PoolEndpointParams,
    querystring: Query,
    response: { 204: NoContent('Ended, or there was none.') },
  }),
  listSessions: route({
    operationId: 'Sessions_List',
    access: { action: 'sessions/read', on: 'pool' },
    summary: 'List the pool’s live sessions, oldest first',
    tag: 'Sessions',
    params: PoolEndpointParams,
    querystring: Type.Object({
      'api-version': DataQuery['api-version'],
      skip: Type.Optional(Type.Integer({ minimum: 0 })),
    }),
    response: {
      200: Type.Object({ sessions: Type.Array(Type.Ref('Session')), nextLink: Type.Optional(Type.String()) }),
    },
  }),
  stopSession: route({
    operationId: 'Sessions_Stop',
    access: { action: 'sessions/stop', on: 'pool' },
    session: 'reaches',
    summary: 'End the identifier’s session (Azure’s custom container form of DELETE session)',
    description: 'Answers 404 SessionNotFound when the identifier has no live session.',
    tag: 'Sessions',
    audit: 'session.stop',
    params: PoolEndpointParams,
    querystring: Type.Object({
      'api-version': Type.Optional(DataQuery['api-version']),
      identifier: DataQuery.identifier,
    }),
    response: {
      200: {
        description: '`Session <identifier> in session pool <pool> stopped.`',
        content: { 'text/plain': { schema: Type.String() } },
      },
    },
  }),
  sessionLogs: route({
    operationId: 'Sessions_Logs',
    access: { action: 'sessions/execute', on: 'pool' },
    session: 'reaches',
    summary: 'Console output of the identifier’s custom container session (its live one, else its last)',
    tag: 'Sessions',
    params: PoolEndpointParams,
    querystring: Type.Object({
      'api-version': Type.Optional(DataQuery['api-version']),
      identifier: DataQuery.identifier,
      tail: Type.Optional(Type.Integer({ minimum: 1, maximum: 10_000, default: 200 })),
    }),
    response: {
      200: Type.Object({
        identifier: Type.String(),
        sessionId: Type.String(),
        live: Type.Boolean({
          description: 'Whether the session still runs (else the log is the ended session’s).',
        }),
        lines: Type.Array(
          Type.Object({
            time: Type.String(),
            stream: Type.Union([Type.Literal('stdout'), Type.Literal('stderr')]),
            text: Type.String(),
          }),
        ),
      }),
    },
  }),
  startFailures: route({
    operationId: 'Pool_StartFailures',
    access: { action: 'sessions/execute', on: 'pool' },
    summary:
      'The pool’s latest failed sandbox starts with the end of each container’s console (for a Session Executor; secrets masked)',
    tag: 'Sessions',
    params: PoolEndpointParams,
    querystring: Type.Object({ 'api-version': Type.Optional(DataQuery['api-version']) }),
    response: {
      200: Type.Object({
        value: Type.Array(
          Type.Object({
            sandboxId: Type.String(),
            at: Type.String(),
            code: Type.String({ description: 'The typed reason, e.g. SandboxStartFailed.' }),
            message: Type.String(),
            console: Type.Array(Type.String(), {
              description:
                "The console's last lines (at most 20, 4 KiB in all), each value of the pool's secrets masked.",
            }),
          }),
        ),
      }),
    },
  }),
  metadata: route({
    operationId: 'Pool_Metadata',
    access: { action: 'sessions/read', on: 'pool' },
    summary: 'The pool’s runtime and pre-installed packages',
    tag: 'Sessions',
    params: PoolEndpointParams,
    querystring: Type.Object({ 'api-version': DataQuery['api-version'] }),
    response: {
      200: Type.Object({
        containerType: Type.String(),
        runtimes: Type.Array(Type.Object({ name: Type.String(), version: Type.String() })),
        preInstalledPackages: Type.Array(Type.Object({ name: Type.String(), version: Type.String() })),
        image: Type.Optional(
          Type.String({ description: 'Custom container pools: the image and its pinned digest.' }),
        ),
        imageDigest: Type.Optional(Type.Union([Type.String(), Type.Null()])),
        createdAt: Type.Optional(Type.String()),
        lastUpdatedAt: Type.Optional(Type.String()),
      }),
    },
  }),
};

function legacyUpload(operationId: string, summary: string) {
  return route({
    operationId,
    access: { action: 'sessions/execute', on: 'pool' },
    session: 'creates',
    summary,
    tag: 'Legacy',
    audit: 'file.upload',
    deprecated: true,
    multipart: true,
    params: PoolEndpointParams,
    querystring: PathQuery,
    response: { 200: LegacyFileList },
  });
}

/** Routes older clients call; answers in those generations' envelopes. */
export const legacyRoutes = {
  codeExecute: route({
    operationId: 'Legacy_CodeExecute',
    access: { action: 'sessions/execute', on: 'pool' },
    session: 'creates',
    summary: 'v1 (2024-02-02-preview): run code; `properties` body and `$id`/`properties` answer',
    tag: 'Legacy',
    audit: 'code.execute',
    deprecated: true,
    params: PoolEndpointParams,
    querystring: Query,
    body: Type.Object({ properties: Type.Ref('ExecutionRequest') }),
    response: {
      200: Type.Object({
        properties: Type.Object({ status: Type.String() }, { additionalProperties: true }),
      }),
    },
  }),
  pythonExecute: route({
    operationId: 'Legacy_PythonExecute',
    access: { action: 'sessions/execute', on: 'pool' },
    session: 'creates',
    summary: 'v0: run `pythonCode`; the identifier may sit in the body',
    tag: 'Legacy',
    audit: 'code.execute',
    deprecated: true,
    params: PoolEndpointParams,
    querystring: Type.Object({
      'api-version': DataQuery['api-version'],
      identifier: Type.Optional(DataQuery.identifier),
    }),
    body: Type.Object({ properties: Type.Object({}, { additionalProperties: true }) }),
    response: { 200: Type.Object({ status: Type.String() }, { additionalProperties: true }) },
  }),
  upload: legacyUpload('Legacy_Upload', 'v1 upload (`files/upload`)'),
  uploadFile: legacyUpload('Legacy_UploadFile', 'v0 upload (`python/uploadFile`)'),
  fileContent: route({
    operationId: 'Legacy_FileContent',
    access: { action: 'sessions/execute', on: 'pool' },
    session: 'creates',
    summary: 'v1 download (`files/content/{name}`)',
    tag: 'Legacy',
    deprecated: true,
    params: FileParams,
    querystring: PathQuery,
    response: Content,
  }),
  downloadFile: route({
    operationId: 'Legacy_DownloadFile',
    access: { action: 'sessions/execute', on: 'pool' },
    session: 'creates',
    summary: 'v0 download (`python/downloadFile?filename=`)',
    tag: 'Legacy',
    deprecated: true,
    params: PoolEndpointParams,
    querystring: Type.Object({ ...DataQuery, filename: Type.String() }),
    response: Content,
  }),
};
