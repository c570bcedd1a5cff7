/**
 * @module api/schemas/nodes
 * Sandpool's nodes (no Azure counterpart): the server processes sharing one store, their leases,
 * and draining one for maintenance.
 */

import { Type } from 'typebox';

import { route } from './common.js';

export const NodeMemory = Type.Object(
  {
    committedBytes: Type.Number({
      description: 'What its sandboxes reserve: each its pool’s session memory.',
    }),
    allocatableBytes: Type.Number({
      description: 'What they may reserve; a session is admitted only when its size fits.',
    }),
    sandboxLimitBytes: Type.Union([Type.Number(), Type.Null()], {
      description: 'The hard limit on all its sandboxes together (their parent cgroup’s); null: none.',
    }),
    workingSetBytes: Type.Number({ description: 'What they hold and cannot give back at once.' }),
    pressureMarkBytes: Type.Union([Type.Number(), Type.Null()], {
      description:
        'The working set at which the node admits no session and ends sandboxes by policy; null while the sessions’ sizes fit in the limit.',
    }),
    underPressure: Type.Boolean(),
  },
  {
    $id: 'NodeMemory',
    description: 'A node’s memory: committed against allocatable, and the sandboxes’ limit and use.',
  },
);

export const Node = Type.Object(
  {
    name: Type.String(),
    url: Type.String({ description: 'Where other nodes and operators reach it.' }),
    maxSandboxes: Type.Integer(),
    maxCpu: Type.Union([Type.Number(), Type.Null()], {
      description:
        'Cores its sandboxes may reserve together, each its pool’s session cpu (null: a node from before this was counted).',
    }),
    maxMemoryBytes: Type.Union([Type.Number(), Type.Null()], {
      description: 'Memory its sandboxes may reserve together, each its pool’s session memory.',
    }),
    draining: Type.Boolean({ description: 'It starts no new session or ready sandbox.' }),
    drained: Type.Boolean({
      description:
        'Draining with nothing left running (for another node: as of the answering node’s last look, or its lease run out).',
    }),
    leader: Type.Optional(
      Type.Boolean({
        description:
          'Given for the answering node: it leads the cluster’s shared duties (ending lost nodes’ sessions, pruning).',
      }),
    ),
    live: Type.Boolean({ description: 'Its lease lies ahead.' }),
    startedAt: Type.String(),
    leaseUntil: Type.String(),
    load: Type.Object(
      {
        sessions: Type.Integer(),
        ready: Type.Integer(),
        starting: Type.Optional(Type.Integer({ description: 'Given for the answering node.' })),
        cpu: Type.Number({ description: 'Cores its sandboxes reserve.' }),
        memoryBytes: Type.Number({ description: 'Memory its sandboxes reserve.' }),
      },
      {
        description:
          'What it holds and reserves: exact for the answering node, as of its last look at the store (every third of a lease) for the others.',
      },
    ),
    memory: Type.Optional(Type.Ref('NodeMemory', { description: 'Given for the answering node.' })),
  },
  { $id: 'Node' },
);

const tag = 'Operations' as const;

export const nodeRoutes = {
  list: route({
    operationId: 'Nodes_List',
    access: { action: 'pools/read', on: 'everything' },
    summary: 'The nodes sharing this store (needs Reader or Contributor on every pool)',
    tag,
    response: { 200: Type.Object({ value: Type.Array(Type.Ref('Node')) }) },
  }),
  drain: route({
    operationId: 'Nodes_Drain',
    access: { action: 'pools/write', on: 'everything' },
    summary: 'Drains a node: no new sessions or ready sandboxes; its sessions run to their end',
    description:
      'Sent to the node itself (Kubernetes’ preStop). Poll the node list until it reports `drained`. A restart undrains it. Needs Contributor on every pool.',
    tag,
    audit: 'node.drain',
    params: Type.Object({ name: Type.String() }),
    response: { 200: Type.Ref('Node') },
  }),
};
