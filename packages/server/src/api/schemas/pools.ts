/**
 * @module api/schemas/pools
 * The `Microsoft.App/sessionPools` resource and its long-running operations, as of the current
 * api-versions. Older api-versions move a few fields (see management/pool-legacy-shapes.ts), so fields
 * that moved are optional here.
 */

import { Type } from 'typebox';

import { POOL_NAME } from '../../arm-id.js';
import { ManagementQuery, NoContent, route } from './common.js';

const Lifecycle = Type.Object({
  lifecycleType: Type.Union([Type.Literal('Timed'), Type.Literal('OnContainerExit')]),
  cooldownPeriodInSeconds: Type.Optional(Type.Integer()),
  maxAlivePeriodInSeconds: Type.Optional(Type.Integer()),
});

const PoolProperties = Type.Object(
  {
    containerType: Type.Optional(
      Type.String({
        description:
          '`PythonLTS`, `NodeLTS`, `Shell` or `CustomContainer` (`JupyterPython` in 2024-02-02-preview).',
      }),
    ),
    poolManagementType: Type.Optional(Type.Literal('Dynamic')),
    scaleConfiguration: Type.Optional(
      Type.Object({
        maxConcurrentSessions: Type.Integer({ minimum: 1 }),
        readySessionInstances: Type.Optional(Type.Integer({ minimum: 0 })),
      }),
    ),
    maxConcurrentSessions: Type.Optional(Type.Integer({ description: 'Where 2024-02-02-preview puts it.' })),
    dynamicPoolConfiguration: Type.Optional(
      Type.Object({
        lifecycleConfiguration: Type.Optional(Lifecycle),
        executionType: Type.Optional(Type.Literal('Timed')),
        cooldownPeriodInSeconds: Type.Optional(Type.Integer()),
        coolDownPeriodInSecond: Type.Optional(Type.Integer()),
      }),
    ),
    sessionNetworkConfiguration: Type.Optional(
      Type.Object({
        status: Type.Union([Type.Literal('EgressEnabled'), Type.Literal('EgressDisabled')]),
        egressAllowlist: Type.Optional(
          Type.Array(Type.String(), {
            maxItems: 64,
            description:
              'Sandpool, EgressEnabled: the only destinations (IPv4 addresses, CIDRs, domain names resolved when a sandbox starts), each optionally limited to a port (`api.example.com:443`, `10.0.0.0/24:5432/tcp`); without it, any public address. Sessions of a pool with an allowlist resolve only its names.',
          }),
        ),
        dnsServer: Type.Optional(
          Type.String({
            description:
              'Sandpool, EgressEnabled: the IPv4 resolver its sessions’ DNS goes to (default: the server’s egressDnsServer).',
          }),
        ),
      }),
    ),
    secrets: Type.Optional(
      Type.Array(
        Type.Object({
          name: Type.String(),
          value: Type.Optional(Type.String({ description: 'Write-only: never returned.' })),
        }),
      ),
    ),
    sessionResources: Type.Optional(
      Type.Object(
        { cpu: Type.Number(), memory: Type.String({ examples: ['0.5Gi'] }) },
        { description: 'Sandpool: cores and memory of each session.' },
      ),
    ),
    sandboxRuntime: Type.Optional(
      Type.String({ description: 'Sandpool: the OCI runtime (`runc` or `runsc`).' }),
    ),
    preloadModules: Type.Optional(
      Type.Array(Type.String(), {
        maxItems: 32,
        examples: [['numpy', 'pandas']],
        description:
          'Sandpool, PythonLTS pools: modules each interpreter imports before its session’s first line, so they are already in `sys.modules` (names are not bound; `import numpy` still does that, at once). Where sandboxes are forked from a zygote (runc, no egress) the modules are imported once per node and shared. Absent: `numpy` and `pandas` where sandboxes are forked, none where each starts its own interpreter; `[]` preloads nothing.',
      }),
    ),
    mcpServerSettings: Type.Optional(
      Type.Object(
        {
          isMcpServerEnabled: Type.Optional(Type.Boolean()),
          isMcpServerApiKeyDisabled: Type.Optional(
            Type.Boolean({
              description:
                'Without the API key, the MCP endpoint takes a Session Executor’s bearer credential instead.',
            }),
          ),
          mcpServerEndpoint: Type.Optional(Type.String({ readOnly: true })),
        },
        {
          description:
            'Azure’s platform MCP server (2025-10-02-preview; PythonLTS and Shell pools): JSON-RPC over POST with the key of fetchMcpServerCredentials in `x-ms-apikey`. Names in any case (`isMCPServerEnabled`).',
        },
      ),
    ),
    customContainerTemplate: Type.Optional(
      Type.Object(
        {
          registryCredentials: Type.Optional(
            Type.Object({
              server: Type.String(),
              username: Type.Optional(Type.String()),
              passwordSecretRef: Type.Optional(
                Type.String({ description: 'The name of one of the pool’s secrets.' }),
              ),
            }),
          ),
          containers: Type.Array(
            Type.Object(
              {
                name: Type.Optional(Type.String()),
                image: Type.String({ examples: ['registry.example:5000/team/app:1'] }),
                command: Type.Optional(Type.Array(Type.String())),
                args: Type.Optional(Type.Array(Type.String())),
                env: Type.Optional(
                  Type.Array(
                    Type.Object({
                      name: Type.String(),
                      value: Type.Optional(Type.String()),
                      secretRef: Type.Optional(Type.String()),
                    }),
                  ),
                ),
                resources: Type.Optional(Type.Object({ cpu: Type.Number(), memory: Type.String() })),
                probes: Type.Optional(Type.Array(Type.Record(Type.String(), Type.Unknown()))),
              },
              { additionalProperties: true },
            ),
            { minItems: 1, maxItems: 1, description: 'Sandpool runs one container per session.' },
          ),
          ingress: Type.Optional(Type.Object({ targetPort: Type.Integer({ minimum: 1, maximum: 65535 }) })),
        },
        {
          description:
            'CustomContainer pools: the image, what it runs and the port the session proxy reaches.',
        },
      ),
    ),
    imageStatus: Type.Optional(
      Type.Object(
        {
          image: Type.String(),
          digest: Type.Union([Type.String(), Type.Null()], {
            description: 'Pinned at the latest successful pull.',
          }),
          pulling: Type.Optional(
            Type.Object({
              image: Type.String(),
              stage: Type.Union([
                Type.Literal('resolving'),
                Type.Literal('downloading'),
                Type.Literal('unpacking'),
              ]),
              startedAt: Type.String(),
            }),
          ),
        },
        {
          readOnly: true,
          description: 'Sandpool, CustomContainer pools: the pinned image and a pull in progress.',
        },
      ),
    ),
    poolManagementEndpoint: Type.Optional(
      Type.String({ readOnly: true, description: 'Base URL of the pool’s data plane.' }),
    ),
    provisioningState: Type.Optional(
      Type.String({ readOnly: true, enum: ['InProgress', 'Succeeded', 'Failed', 'Canceled', 'Deleting'] }),
    ),
    nodeCount: Type.Optional(Type.Integer({ readOnly: true })),
    sessionStatus: Type.Optional(
      Type.Object(
        {
          readySessionCount: Type.Integer(),
          allocatedSessionCount: Type.Integer(),
          startingSessionCount: Type.Integer(),
          consecutiveStartFailures: Type.Integer(),
          lastStartError: Type.Union([Type.String(), Type.Null()]),
        },
        { readOnly: true, description: 'Sandpool: the warm set and its health, live.' },
      ),
    ),
  },
  { additionalProperties: true },
);

export const SessionPool = Type.Object(
  {
    id: Type.Optional(Type.String({ readOnly: true })),
    name: Type.Optional(Type.String({ readOnly: true })),
    type: Type.Optional(Type.String({ readOnly: true })),
    location: Type.String(),
    tags: Type.Optional(Type.Record(Type.String(), Type.String())),
    systemData: Type.Optional(
      Type.Object({ createdAt: Type.String(), lastModifiedAt: Type.String() }, { readOnly: true }),
    ),
    properties: PoolProperties,
  },
  { $id: 'SessionPool' },
);

const PoolList = Type.Object({
  value: Type.Array(Type.Ref('SessionPool')),
  nextLink: Type.Optional(Type.String()),
});

const OperationStatus = Type.Object({
  id: Type.String(),
  name: Type.String(),
  status: Type.Union([Type.Literal('InProgress'), Type.Literal('Succeeded'), Type.Literal('Failed')]),
  startTime: Type.String(),
  endTime: Type.Optional(Type.String()),
  error: Type.Optional(Type.Object({ code: Type.String(), message: Type.String() })),
});

const ResourceGroupParams = Type.Object({ subscription: Type.String(), resourceGroup: Type.String() });
export const PoolParams = Type.Object({
  subscription: Type.String(),
  resourceGroup: Type.String(),
  name: Type.String({ pattern: POOL_NAME.source }),
});
const OperationParams = Type.Object({
  subscription: Type.String(),
  location: Type.String(),
  operationId: Type.String(),
});
const ListQuery = Type.Object({
  ...ManagementQuery.properties,
  $top: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
  $skipToken: Type.Optional(Type.String()),
});

const tag = 'Session pools' as const;

export const poolRoutes = {
  listBySubscription: route({
    operationId: 'SessionPools_ListBySubscription',
    access: 'caller',
    summary: 'List the session pools of a subscription',
    tag,
    params: Type.Object({ subscription: Type.String() }),
    querystring: ListQuery,
    response: { 200: PoolList },
  }),
  listByResourceGroup: route({
    operationId: 'SessionPools_ListByResourceGroup',
    access: 'caller',
    summary: 'List the session pools of a resource group',
    tag,
    params: ResourceGroupParams,
    querystring: ListQuery,
    response: { 200: PoolList },
  }),
  get: route({
    operationId: 'SessionPools_Get',
    access: { action: 'pools/read', on: 'pool' },
    summary: 'Get a session pool',
    tag,
    params: PoolParams,
    querystring: ManagementQuery,
    response: { 200: Type.Ref('SessionPool') },
  }),
  createOrUpdate: route({
    operationId: 'SessionPools_CreateOrUpdate',
    access: { action: 'pools/write', on: 'pool' },
    summary: 'Create or replace a session pool',
    description:
      'Long-running: poll the `Azure-AsyncOperation` URL. A changed template replaces the ready sandboxes; allocated sessions run on.',
    tag,
    audit: 'pool.createOrUpdate',
    params: PoolParams,
    querystring: ManagementQuery,
    body: Type.Ref('SessionPool'),
    response: { 200: Type.Ref('SessionPool'), 201: Type.Ref('SessionPool') },
  }),
  update: route({
    operationId: 'SessionPools_Update',
    access: { action: 'pools/write', on: 'pool' },
    summary: 'Update a session pool (JSON merge patch)',
    description: 'Long-running: poll the `Location` or `Azure-AsyncOperation` URL.',
    tag,
    audit: 'pool.update',
    params: PoolParams,
    querystring: ManagementQuery,
    body: Type.Object({}, { additionalProperties: true, description: 'A JSON merge patch of the resource.' }),
    response: { 202: Type.Ref('SessionPool') },
  }),
  delete: route({
    operationId: 'SessionPools_Delete',
    access: { action: 'pools/write', on: 'pool' },
    summary: 'Delete a session pool',
    description: 'Long-running: its sessions end with reason `poolDeleted`.',
    tag,
    audit: 'pool.delete',
    params: PoolParams,
    querystring: ManagementQuery,
    response: {
      202: NoContent('Deleting; poll the Location URL.'),
      204: NoContent('No such pool.'),
    },
  }),
  operationStatus: route({
    operationId: 'SessionPoolOperationStatuses_Get',
    access: 'caller',
    summary: 'Status of a long-running pool operation (Azure-AsyncOperation)',
    tag,
    params: OperationParams,
    querystring: ManagementQuery,
    response: { 200: OperationStatus },
  }),
  operationResult: route({
    operationId: 'SessionPoolOperationResults_Get',
    access: 'caller',
    summary: 'Result of a long-running pool operation (Location)',
    tag,
    params: OperationParams,
    querystring: ManagementQuery,
    response: {
      200: Type.Ref('SessionPool'),
      202: NoContent('Still running; poll again after Retry-After.'),
      204: NoContent('The pool was deleted.'),
    },
  }),
};
