/**
 * @module api/management/pool-render
 * Writes a stored pool back as the `Microsoft.App/sessionPools` resource GET returns, in the shape of
 * the request's api-version. Beyond Azure, two properties: `sessionResources` (cpu and memory per
 * session) and `sandboxRuntime` (`runc`, or `runsc` for gVisor). Secret values are write-only.
 */

import type { PoolStatus } from '../../pool/pool-manager.js';
import { storedSpec } from '../../pool/pool-spec.js';
import type { PoolRow } from '../../store/store.js';
import type { ManagementShape } from '../api-version.js';
import type { JsonRecord } from '../wire.js';
import { containerTemplateResource } from './container-template.js';
import { PLATFORM_MCP_PATH } from '../schemas/mcp.js';
import { versionedProperties } from './pool-legacy-shapes.js';

const GIB = 1024 ** 3;
const formatMemory = (bytes: number) => `${Number((bytes / GIB).toFixed(3))}Gi`;

/** The ARM resource as GET returns it. Secret values are write-only and never returned. */
export function poolResource(
  pool: PoolRow,
  endpointBase: string,
  status: PoolStatus | undefined,
  shape: ManagementShape,
): JsonRecord {
  const spec = storedSpec(pool);
  const versioned = versionedProperties(spec, shape);
  const resourceId = `/subscriptions/${pool.subscription}/resourceGroups/${pool.resourceGroup}/providers/Microsoft.App/sessionPools/${pool.name}`;
  const poolManagementEndpoint = `${endpointBase}/subscriptions/${pool.subscription}/resourceGroups/${pool.resourceGroup}/sessionPools/${pool.name}`;
  return {
    id: resourceId,
    name: pool.name,
    type: 'Microsoft.App/sessionPools',
    location: pool.location,
    tags: pool.tags,
    systemData: { createdAt: pool.createdAt, lastModifiedAt: pool.updatedAt },
    properties: {
      ...versioned,
      poolManagementType: 'Dynamic',
      nodeCount: 1,
      secrets: spec.secrets.map((s) => ({ name: s.name })),
      sessionNetworkConfiguration: {
        status: spec.egress,
        ...(spec.egressAllow.length > 0 && { egressAllowlist: spec.egressAllow }),
        ...(spec.egressDnsServer !== undefined && { dnsServer: spec.egressDnsServer }),
      },
      sessionResources: { cpu: spec.cpu, memory: formatMemory(spec.memoryBytes) },
      ...(spec.container && {
        customContainerTemplate: containerTemplateResource(spec.container, {
          cpu: spec.cpu,
          memory: formatMemory(spec.memoryBytes),
        }),
        imageStatus: {
          image: spec.container.image,
          digest: spec.container.imageDigest,
          ...(status?.imagePull && { pulling: status.imagePull }),
        },
      }),
      sandboxRuntime: spec.runtime,
      // Absent: the pool named none, and gets the default (docs/density.md).
      ...(spec.containerType === 'PythonLTS' && spec.preload !== null && { preloadModules: spec.preload }),
      poolManagementEndpoint,
      ...(shape === 'current' && {
        mcpServerSettings: {
          isMcpServerEnabled: spec.mcpServer.enabled,
          isMcpServerApiKeyDisabled: spec.mcpServer.apiKeyDisabled,
          ...(spec.mcpServer.enabled && {
            mcpServerEndpoint: `${poolManagementEndpoint}${PLATFORM_MCP_PATH}`,
          }),
        },
      }),
      provisioningState: pool.provisioningState,
      ...(status && {
        sessionStatus: {
          readySessionCount: status.ready,
          allocatedSessionCount: status.allocated,
          startingSessionCount: status.starting,
          consecutiveStartFailures: status.consecutiveStartFailures,
          lastStartError: status.lastStartError ?? pool.statusMessage,
        },
      }),
    },
  };
}
