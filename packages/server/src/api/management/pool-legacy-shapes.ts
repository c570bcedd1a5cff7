/**
 * @module api/management/pool-legacy-shapes
 * The pre-2025 api-versions' shapes of a session pool, both ways: a body in an old shape is moved to
 * the current one before it is read, and a pool is rendered where each old version's clients look
 * for its scale and lifecycle settings.
 */

import type { PoolSpec } from '../../pool/pool-spec.js';
import type { ManagementShape } from '../api-version.js';
import { field, firstField, isRecord, optionalEnum, optionalObject, type JsonRecord } from '../wire.js';

/** A copy of `record` with `name` (matched case-insensitively) set to `value`, or removed when undefined. */
function withField(record: JsonRecord, name: string, value: unknown): JsonRecord {
  const rest = Object.entries(record).filter(([key]) => key.toLowerCase() !== name.toLowerCase());
  return Object.fromEntries(value === undefined ? rest : [...rest, [name, value]]);
}

/**
 * Moves the settings of the pre-2025 api-versions to where the current shape has them:
 * `properties.maxConcurrentSessions` (2024-02-02-preview) into `scaleConfiguration`,
 * `dynamicPoolConfiguration.executionType` + `coolDownPeriodInSecond` / `cooldownPeriodInSeconds`
 * (2024 previews) into `lifecycleConfiguration`, and `JupyterPython` to `PythonLTS`. A body of any
 * version then reads the same way, and a PATCH in an old shape merges onto the current resource.
 */
export function toCurrentShape(body: unknown): unknown {
  if (!isRecord(body)) return body;
  const properties = field(body, 'properties');
  if (!isRecord(properties)) return body;
  let result = properties;
  const max = field(result, 'maxConcurrentSessions');
  if (max !== undefined) {
    const scale = optionalObject(field(result, 'scaleConfiguration'), 'properties.scaleConfiguration') ?? {};
    result = withField(withField(result, 'maxConcurrentSessions', undefined), 'scaleConfiguration', {
      ...scale,
      maxConcurrentSessions: max,
    });
  }
  const dynamic = optionalObject(
    field(result, 'dynamicPoolConfiguration'),
    'properties.dynamicPoolConfiguration',
  );
  if (dynamic) {
    const executionType = optionalEnum(
      field(dynamic, 'executionType'),
      'properties.dynamicPoolConfiguration.executionType',
      ['Timed'] as const,
    );
    const cooldown = firstField(dynamic, ['cooldownPeriodInSeconds', 'coolDownPeriodInSecond']);
    let moved = withField(
      withField(dynamic, 'executionType', undefined),
      'cooldownPeriodInSeconds',
      undefined,
    );
    moved = withField(moved, 'coolDownPeriodInSecond', undefined);
    if (executionType !== undefined || cooldown !== undefined) {
      const lifecycle =
        optionalObject(
          field(moved, 'lifecycleConfiguration'),
          'properties.dynamicPoolConfiguration.lifecycleConfiguration',
        ) ?? {};
      moved = withField(moved, 'lifecycleConfiguration', {
        ...lifecycle,
        lifecycleType: 'Timed',
        ...(cooldown !== undefined && { cooldownPeriodInSeconds: cooldown }),
      });
    }
    result = withField(result, 'dynamicPoolConfiguration', moved);
  }
  const containerType = field(result, 'containerType');
  if (typeof containerType === 'string' && containerType.toLowerCase() === 'jupyterpython') {
    result = withField(result, 'containerType', 'PythonLTS');
  }
  return withField(body, 'properties', result);
}

/** The container type, scale and lifecycle settings, where the api-version's clients read them. */
export function versionedProperties(spec: PoolSpec, shape: ManagementShape): JsonRecord {
  const cooldownSeconds = spec.lifecycle.type === 'Timed' ? spec.lifecycle.cooldownSeconds : undefined;
  return shape === 'preview-2024-02'
    ? {
        // That version called the Python code interpreter JupyterPython.
        containerType: spec.containerType === 'PythonLTS' ? 'JupyterPython' : spec.containerType,
        maxConcurrentSessions: spec.maxConcurrentSessions,
        dynamicPoolConfiguration: { executionType: 'Timed', coolDownPeriodInSecond: cooldownSeconds },
      }
    : {
        containerType: spec.containerType,
        scaleConfiguration: {
          maxConcurrentSessions: spec.maxConcurrentSessions,
          readySessionInstances: spec.readySessionInstances,
        },
        dynamicPoolConfiguration:
          shape === 'preview-2024-08'
            ? { executionType: 'Timed', cooldownPeriodInSeconds: cooldownSeconds }
            : {
                lifecycleConfiguration:
                  spec.lifecycle.type === 'Timed'
                    ? { lifecycleType: 'Timed', cooldownPeriodInSeconds: spec.lifecycle.cooldownSeconds }
                    : {
                        lifecycleType: 'OnContainerExit',
                        maxAlivePeriodInSeconds: spec.lifecycle.maxAliveSeconds,
                      },
              },
      };
}
