/**
 * @module api/schemas/events
 * A pool's lifecycle events: the list, and the same route as a server-sent event stream.
 */

import { Type } from 'typebox';

import { ManagementQuery, route } from './common.js';

/** Every event type the pools record. */
export const EVENT_TYPES = [
  'ready',
  'allocated',
  'ended',
  'startFailed',
  'imagePulled',
  'imagePullFailed',
  'egressDenied',
] as const;

export const Event = Type.Object(
  {
    id: Type.String({
      description: 'Increasing sequence number; resume a stream after it with Last-Event-ID.',
    }),
    type: Type.String({ enum: [...EVENT_TYPES] }),
    at: Type.String(),
    identifier: Type.Union([Type.String(), Type.Null()]),
    sessionId: Type.Union([Type.String(), Type.Null()], { description: 'The sandbox.' }),
    reason: Type.Union([Type.String(), Type.Null()], {
      description:
        'ended: cooldown, maxAlive, containerExit, stopped, oom, crashed, unhealthy, killed, poolDeleted, poolUpdated, hostLost; startFailed and imagePullFailed: the error code; egressDenied: the refused destination.',
    }),
    details: Type.Union([Type.Record(Type.String(), Type.Unknown()), Type.Null()]),
  },
  { $id: 'Event' },
);

export const eventRoutes = {
  list: route({
    operationId: 'SessionPoolEvents_List',
    access: { action: 'pools/read', on: 'pool' },
    summary: 'A pool’s lifecycle events, oldest first; with Accept: text/event-stream, a live stream',
    description:
      'Narrow with `type` (comma-separated), `identifier` and `since`. As a stream, events the client missed (after `Last-Event-ID` or `$skipToken`) come first, then new ones as they happen, each as `id`, `event` (the type) and `data` (the event as JSON).',
    tag: 'Session pools',
    params: Type.Object({ subscription: Type.String(), resourceGroup: Type.String(), name: Type.String() }),
    querystring: Type.Object({
      ...ManagementQuery.properties,
      type: Type.Optional(Type.String({ examples: ['ended,startFailed'] })),
      identifier: Type.Optional(Type.String()),
      since: Type.Optional(Type.String({ description: 'ISO 8601 time.' })),
      $top: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 100 })),
      $skipToken: Type.Optional(Type.String({ description: 'The id of the last event already read.' })),
    }),
    headers: Type.Object({ 'last-event-id': Type.Optional(Type.String()) }),
    response: {
      200: {
        description: 'A page of events, or (Accept: text/event-stream) the stream.',
        content: {
          'application/json': {
            schema: Type.Object({
              value: Type.Array(Type.Ref('Event')),
              nextLink: Type.Optional(Type.String()),
            }),
          },
          'text/event-stream': { schema: Type.String() },
        },
      },
    },
  }),
};

const Counts = (description: string) => Type.Record(Type.String(), Type.Integer(), { description });

export const TimelinePoint = Type.Object({
  at: Type.String({ description: 'Start of the minute.' }),
  allocations: Type.Integer(),
  coldAllocations: Type.Integer({ description: 'Allocations that found no ready sandbox.' }),
  allocationP50Ms: Type.Union([Type.Number(), Type.Null()]),
  allocationP99Ms: Type.Union([Type.Number(), Type.Null()]),
  executions: Type.Object({
    succeeded: Type.Integer(),
    failed: Type.Integer(),
    timeout: Type.Integer(),
    lost: Type.Integer(),
  }),
  ends: Counts('Sessions ended, by reason.'),
  poolFullRejections: Type.Integer(),
});

export const timelineRoutes = {
  get: route({
    operationId: 'SessionPoolTimeline_Get',
    access: { action: 'pools/read', on: 'pool' },
    summary: 'A pool’s last hour, minute by minute (kept in memory since the server started)',
    description:
      'Allocations with their p50 and p99 latency, executions by status, session ends by reason and pool-full refusals; minutes with nothing in them are included. For longer history, scrape `/metrics`.',
    tag: 'Session pools',
    params: Type.Object({ subscription: Type.String(), resourceGroup: Type.String(), name: Type.String() }),
    querystring: Type.Object({
      ...ManagementQuery.properties,
      minutes: Type.Optional(Type.Integer({ minimum: 1, maximum: 60, default: 60 })),
    }),
    response: {
      200: Type.Object({
        bucketSeconds: Type.Integer(),
        points: Type.Array(TimelinePoint),
      }),
    },
  }),
};
