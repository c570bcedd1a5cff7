/**
 * @module api/schemas/access
 * Sandpool's own credential routes (no Azure counterpart): API keys and short-lived tokens.
 */

import { Type } from 'typebox';

import { route } from './common.js';

const Roles = Type.Array(
  Type.String({
    description: '`Role` or `Role:pool`; roles are SessionExecutor, Contributor and Reader.',
    examples: ['SessionExecutor:default'],
  }),
  { minItems: 1 },
);

export const ApiKey = Type.Object(
  {
    id: Type.String(),
    name: Type.String(),
    roles: Type.Array(Type.String()),
    createdAt: Type.String(),
    revokedAt: Type.Union([Type.String(), Type.Null()]),
    expiresAt: Type.Union([Type.String(), Type.Null()], {
      description:
        'When the key stops working: a key made by a token expires with it (and dies with the key the token came from); null for none.',
    }),
  },
  { $id: 'ApiKey' },
);

const tag = 'Access' as const;

export const accessRoutes = {
  whoami: route({
    operationId: 'Principal_Get',
    access: 'caller',
    summary: 'Who the credential is and the roles it holds',
    description:
      'Lets a client (the dashboard, `sandpool profile`) show only what the caller may do; the server still checks every request.',
    tag,
    response: {
      200: Type.Object({
        principal: Type.String({ description: '`key:<id>` for API keys, `<iss>#<sub>` for tokens.' }),
        roles: Type.Array(Type.String(), { examples: [['Reader', 'SessionExecutor:default']] }),
        defaultSubscription: Type.String({
          description: 'The subscription of this server’s default pool, for clients that have no other.',
        }),
      }),
    },
  }),
  createKey: route({
    operationId: 'ApiKeys_Create',
    access: 'caller',
    summary: 'Create an API key (its secret is shown once)',
    tag,
    audit: 'key.create',
    body: Type.Object({ name: Type.Optional(Type.String({ maxLength: 128 })), roles: Roles }),
    response: {
      201: Type.Object({
        ...ApiKey.properties,
        key: Type.String({ description: 'The secret: `sp_<id>_<random>`.' }),
        e2bKey: Type.String({
          description:
            'The same key in the shape E2B’s SDKs check (`e2b_` and hex), for E2B_API_KEY; either form works anywhere.',
        }),
      }),
    },
  }),
  listKeys: route({
    operationId: 'ApiKeys_List',
    access: 'caller',
    summary: 'List API keys (never their secrets)',
    tag,
    response: { 200: Type.Object({ value: Type.Array(Type.Ref('ApiKey')) }) },
  }),
  revokeKey: route({
    operationId: 'ApiKeys_Revoke',
    access: 'caller',
    summary: 'Revoke an API key',
    tag,
    audit: 'key.revoke',
    params: Type.Object({ id: Type.String() }),
    response: { 200: Type.Ref('ApiKey') },
  }),
  createToken: route({
    operationId: 'Tokens_Create',
    access: 'caller',
    summary: 'Mint a short-lived token with some or all of the caller’s roles',
    tag,
    audit: 'token.create',
    body: Type.Object({
      roles: Type.Optional(Roles),
      expiresInSeconds: Type.Optional(Type.Integer({ minimum: 60, maximum: 86_400, default: 3600 })),
    }),
    response: { 201: Type.Object({ token: Type.String(), expiresAt: Type.String() }) },
  }),
};
