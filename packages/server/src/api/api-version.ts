/**
 * @module api/api-version
 * The api-versions this server answers, per plane. A request must name one, like Azure requires.
 */

import { AppError, ErrorCode } from '../errors.js';

/** Management plane versions, oldest first; see {@link managementShape} for how their bodies differ. */
export const MANAGEMENT_VERSIONS = [
  '2024-02-02-preview',
  '2024-08-02-preview',
  '2024-10-02-preview',
  '2025-01-01',
  '2025-02-02-preview',
  '2025-07-01',
  '2025-10-02-preview',
  '2026-01-01',
  '2026-07-01',
];

/**
 * Where a management api-version puts the pool's settings: 2024-02-02-preview has
 * `maxConcurrentSessions` under `properties` and `coolDownPeriodInSecond`; the 2024-08 and 2024-10
 * previews `scaleConfiguration` and `executionType` + `cooldownPeriodInSeconds`; 2025-01-01 and later
 * `lifecycleConfiguration`. Requests are read in any of these shapes whatever their version.
 */
export type ManagementShape = 'preview-2024-02' | 'preview-2024-08' | 'current';

export function managementShape(apiVersion: string): ManagementShape {
  if (apiVersion === '2024-02-02-preview') return 'preview-2024-02';
  if (apiVersion === '2024-08-02-preview' || apiVersion === '2024-10-02-preview') return 'preview-2024-08';
  return 'current';
}

/** Data plane versions of the legacy (`code/execute`, `properties` envelopes) generation. */
export const LEGACY_DATA_VERSIONS = ['2024-02-02-preview', '2024-08-02-preview'];

/** Data plane versions of the current (`executions`) generation. */
export const CURRENT_DATA_VERSIONS = ['2024-10-02-preview', '2025-02-02-preview', '2025-10-02-preview'];

export const DATA_VERSIONS = [...LEGACY_DATA_VERSIONS, ...CURRENT_DATA_VERSIONS];

/**
 * Which response shapes a data-plane request gets where a path exists in both generations
 * (`files`, `files/{name}`): `v1` envelopes for the legacy versions, flat `v2` resources otherwise.
 */
export type DataGeneration = 'v1' | 'v2';

export const dataGeneration = (apiVersion: string): DataGeneration =>
  LEGACY_DATA_VERSIONS.includes(apiVersion) ? 'v1' : 'v2';

export function requireApiVersion(value: unknown, supported: readonly string[]): string {
  if (typeof value !== 'string' || value === '') {
    throw new AppError(
      ErrorCode.MissingApiVersionParameter,
      `The api-version query parameter (?api-version=) is required for all requests. Supported: ${supported.join(', ')}.`,
    );
  }
  if (!supported.includes(value)) {
    throw new AppError(
      ErrorCode.InvalidApiVersionParameter,
      `The api-version '${value}' is invalid. The supported versions are '${supported.join(', ')}'.`,
    );
  }
  return value;
}
