/**
 * @module api/schemas/usage
 * Usage for cost attribution: what sessions and prewarmed sandboxes consumed over a time window,
 * summed by pool or by the value of a pool tag.
 */

import { Type } from 'typebox';

import { route } from './common.js';

export const UsageTotals = Type.Object(
  {
    key: Type.String({
      description: 'The pool (`<resource group>/<name>`), or the tag’s value (`(none)` without it).',
    }),
    sessions: Type.Integer(),
    sessionSeconds: Type.Number({ description: 'Allocation to end, summed over sessions.' }),
    cpuSeconds: Type.Number({ description: 'CPU time the sessions’ cgroups counted.' }),
    memoryGibSeconds: Type.Number({ description: 'Memory reserved per session × session seconds.' }),
    executions: Type.Integer(),
    readySeconds: Type.Number({
      description: 'Time prewarmed sandboxes waited unused: the cost of readySessionInstances.',
    }),
    readyMemoryGibSeconds: Type.Number(),
  },
  { $id: 'UsageTotals' },
);

export const usageRoutes = {
  get: route({
    operationId: 'Usage_Get',
    access: { action: 'pools/read', on: 'everything' },
    summary: 'Usage over a time window, by pool or by a pool tag (needs Reader or Contributor on every pool)',
    description:
      'A session counts in the window its use ended in; so does a prewarmed sandbox’s wait. Sessions still running count once they end.',
    tag: 'Operations',
    querystring: Type.Object({
      since: Type.Optional(Type.String({ description: 'ISO 8601 time; default 30 days ago.' })),
      until: Type.Optional(Type.String({ description: 'ISO 8601 time; default now.' })),
      by: Type.Optional(
        Type.String({ description: '`pool` (default) or `tag:<name>`, e.g. tag:costCenter.' }),
      ),
    }),
    response: {
      200: Type.Object({
        since: Type.String(),
        until: Type.String(),
        by: Type.String(),
        value: Type.Array(Type.Ref('UsageTotals')),
      }),
    },
  }),
};
