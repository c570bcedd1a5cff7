/**
 * @module api/schemas/common
 * Route schemas describe the wire contract: they generate `openapi.json` (and through it the SDK's
 * types), and in tests every response is checked against them. They do not validate requests:
 * api/wire.ts reads bodies as Azure does (keys and enums in any case, unknown fields ignored) and
 * answers bad input with Azure's error codes, which JSON Schema validation cannot express.
 *
 * Each route also declares who may call it (`access`) and what it does to the session its request
 * names (`session`); api/request-path applies both, the same way for every route.
 */

import { Type, type TSchema } from 'typebox';

import type { Action } from '../../auth/roles.js';
import { DATA_VERSIONS, MANAGEMENT_VERSIONS } from '../api-version.js';

/**
 * Who may call a route, checked once the caller is authenticated and before its body is read:
 * - `public`: anyone, without a credential (health, the API's description, the dashboard's page);
 * - `{ action, on: 'pool' }`: a role that allows the action (each of them) on the pool the path names;
 * - `{ action, on: 'everything' }`: a role that allows it on every pool of the server;
 * - `caller`: any credential; the route answers only what is within the caller's scopes;
 * - `poolKey`: the pool's MCP key in its own header (the route checks it), or a bearer credential;
 * - `sandbox`: an E2B sandbox's own access token (`X-Access-Token`) for the sandbox the request
 *   names, which stands for who made the sandbox, narrowed to it (envd, code runs);
 * - `sandboxTraffic`: the same, or the sandbox's traffic token (`E2B-Traffic-Access-Token`), which
 *   a client may hand on: where no code runs (the interpreter's contexts) and on the sandbox's ports.
 */
export type Access =
  | 'public'
  | 'caller'
  | 'poolKey'
  | 'sandbox'
  | 'sandboxTraffic'
  | { action: Action | readonly Action[]; on: 'pool' | 'everything' };

/**
 * What a route does to the session its identifier names: `creates` makes one when none lives (the
 * first request of an identifier), `reaches` finds a live one only. Either way the request is served
 * on the node that holds the session.
 */
export type SessionEffect = 'creates' | 'reaches';

/**
 * The error body a front door's clients read: Azure's (`{ error: { code, message } }`), E2B's REST
 * (`{ code: <status>, message }`) or Connect's, as E2B's envd clients read it (`{ code: "not_found",
 * message }`).
 */
export type Wire = 'azure' | 'e2b' | 'connect';

declare module 'fastify' {
  interface FastifyContextConfig {
    access?: Access;
    session?: SessionEffect;
    /** Azure's when not named. */
    wire?: Wire;
    /** The action the audit trail records this route's calls under. */
    audit?: string;
  }
}

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

export const E2bErrorResponse = Type.Object(
  {
    code: Type.Integer({ description: 'The HTTP status, as E2B’s SDKs read it.' }),
    message: Type.String(),
    sandboxId: Type.Optional(Type.String({ description: 'The sandbox that does not run (502).' })),
    error_code: Type.Optional(
      Type.String({ description: 'Sandpool’s stable code; also in x-ms-error-code.' }),
    ),
  },
  { $id: 'E2bErrorResponse', description: "E2B's error body." },
);

export const ConnectErrorResponse = Type.Object(
  {
    code: Type.String({ description: 'A Connect code: `not_found`, `unauthenticated`, …' }),
    message: Type.String(),
  },
  { $id: 'ConnectErrorResponse', description: "Connect's error body, as E2B's envd clients read it." },
);

/** Which shared schema a route's error bodies follow, by its front door. */
const errorBodies: Record<Wire, string> = {
  azure: 'ErrorResponse',
  e2b: 'E2bErrorResponse',
  connect: 'ConnectErrorResponse',
};

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
  | 'Legacy'
  | 'E2B';

export interface RouteDoc {
  operationId: string;
  access: Access;
  session?: SessionEffect;
  /** The error body its clients read (Azure's when not named). */
  wire?: Wire;
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
    config: {
      access: doc.access,
      ...(doc.session && { session: doc.session }),
      ...(doc.wire && { wire: doc.wire }),
      ...(doc.audit && { audit: doc.audit }),
    },
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
      ...(doc.access !== 'public' && { security: [{ bearer: [] }] }),
      response: {
        ...doc.response,
        '4xx': Type.Ref(errorBodies[doc.wire ?? 'azure']),
        '5xx': Type.Ref(errorBodies[doc.wire ?? 'azure']),
      },
    },
  };
}
