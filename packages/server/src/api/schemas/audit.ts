/**
 * @module api/schemas/audit
 * The audit trail's entries and the route that reads them.
 */

import { Type } from 'typebox';

import { route } from './common.js';

const MAX_PAGE_SIZE = 1000;
const PAGE_SIZE = 100;

export const AuditEntry = Type.Object(
  {
    id: Type.String(),
    at: Type.String(),
    principal: Type.String({ description: '`key:<id>`, `<issuer>#<subject>`, or `unauthenticated`.' }),
    action: Type.String({ examples: ['code.execute', 'pool.createOrUpdate', 'key.create'] }),
    resourceGroup: Type.Union([Type.String(), Type.Null()]),
    pool: Type.Union([Type.String(), Type.Null()]),
    identifier: Type.Union([Type.String(), Type.Null()]),
    status: Type.Integer({ description: 'The HTTP status the call ended with.' }),
    durationMs: Type.Number(),
    requestId: Type.String({
      description:
        'The id this server gave the request: also in the server log and the x-ms-request-id header.',
    }),
    clientRequestId: Type.Union([Type.String(), Type.Null()], {
      description: 'The x-ms-client-request-id the client sent, as a label: it identifies nothing.',
    }),
  },
  { $id: 'AuditEntry' },
);

export const auditRoutes = {
  list: route({
    operationId: 'Audit_List',
    access: { action: 'pools/read', on: 'everything' },
    summary: 'The audit trail, oldest first (needs Reader or Contributor on every pool)',
    tag: 'Operations',
    querystring: Type.Object({
      since: Type.Optional(Type.String({ description: 'ISO 8601 time; entries at or after it.' })),
      until: Type.Optional(Type.String({ description: 'ISO 8601 time; entries before it.' })),
      principal: Type.Optional(Type.String()),
      action: Type.Optional(Type.String()),
      pool: Type.Optional(Type.String()),
      $top: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_PAGE_SIZE, default: PAGE_SIZE })),
      $skipToken: Type.Optional(Type.String({ description: 'The id of the last entry already read.' })),
    }),
    response: {
      200: Type.Object({
        value: Type.Array(Type.Ref('AuditEntry')),
        nextLink: Type.Optional(Type.String()),
      }),
    },
  }),
};
