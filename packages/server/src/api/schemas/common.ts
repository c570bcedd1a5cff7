/**
 * @module api/schemas/common
 * Route schemas describe the wire contract: they generate `openapi.json` (and through it the SDK's
 * types), and in tests every response is checked against them. They do not validate requests:
 * api/wire.ts reads bodies as Azure does (keys and enums in any case, unknown fields ignored) and
 * answers bad input with Azure's error codes, which JSON Schema validation cannot express.
 */

import { Type, type TSchema } from 'typebox';

import { DATA_VERSIONS, MANAGEMENT_VERSIONS } from '../api-version.js';

export const ErrorResponse = Type.Object(
  {
    error: Type.Object({
      code: Type.String({ description: 'Stable error code; also in the x-ms-error-code header.' }),
      message: Type.String(),
      target: Type.Optional(Type.String({ description: 'The field or parameter at fault.' })),
      additionalInfo: Type.Optional(
        Type.Array(Type.Object({ type: Type.String(), info: Type.Record(Type.String(), Type.Unknown()) })),
      ),
    }),
  },
  { $id: 'ErrorResponse', description: "Azure's error body." },
);

const apiVersion = (versions: readonly string[], description: string) =>
  Type.String({ enum: [...versions], description });

export const ManagementQuery = Type.Object({
  'api-version': apiVersion(MANAGEMENT_VERSIONS, 'Each version answers in the shape its clients expect.'),
});

export const DataQuery = {
  'api-version': apiVersion(
    DATA_VERSIONS,
    '2024-02-02-preview selects the legacy envelopes; later versions the current shapes.',
  ),
  identifier: Type.String({
    minLength: 1,
    maxLength: 256,
    description: 'Names the session; the first request with a new identifier allocates one.',
  }),
};

export const PoolEndpointParams = Type.Object({
  subscription: Type.String(),
  resourceGroup: Type.String(),
  pool: Type.String({ description: 'The session pool name.' }),
});

export type Tag =
  | 'Session pools'
  | 'Executions'
  | 'Files'
  | 'Processes'
  | 'Sessions'
  | 'MCP'
  | 'Access'
  | 'Health'
  | 'Operations'
  | 'Legacy';

export interface RouteDoc {
  operationId: string;
  summary: string;
  tag: Tag;
  description?: string;
  params?: TSchema;
  querystring?: TSchema;
  headers?: TSchema;
  body?: TSchema;
  /** Documented responses by status; an error body is added for every failure status. */
  response?: Record<number, TSchema | { description: string }>;
  /** Requests are `multipart/form-data` with one part named `file`. */
  multipart?: boolean;
  deprecated?: boolean;
  /** The audit trail records every call of this route under this action name. */
  audit?: string;
}

const MultipartFile = Type.Object({
  file: Type.String({ format: 'binary', description: 'The file; its filename is the name it gets.' }),
});

/** A response with no body, documented by its description. */
export const NoContent = (description: string) => ({ description });

/** The Fastify route schema for `doc`: the OpenAPI generator reads it, and tests check responses against it. */
export function route(doc: RouteDoc) {
  return {
    ...(doc.audit && { config: { audit: doc.audit } }),
    schema: {
      operationId: doc.operationId,
      summary: doc.summary,
      ...(doc.description && { description: doc.description }),
      tags: [doc.tag],
      ...(doc.deprecated && { deprecated: true }),
      ...(doc.params && { params: doc.params }),
      ...(doc.querystring && { querystring: doc.querystring }),
      ...(doc.headers && { headers: doc.headers }),
      ...(doc.body && { body: doc.body }),
      ...(doc.multipart && { consumes: ['multipart/form-data'], body: MultipartFile }),
      security: [{ bearer: [] }],
      response: {
        ...doc.response,
        '4xx': Type.Ref('ErrorResponse'),
        '5xx': Type.Ref('ErrorResponse'),
      },
    },
  };
}
