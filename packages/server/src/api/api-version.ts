/**
 * @module api/api-version
 * The api-versions this server answers, per plane. A request must name one, like Azure requires.
 */

import { AppError, ErrorCode } from '../errors.js';

/** Management plane versions in the current (lifecycleConfiguration) shape. */
export const MANAGEMENT_VERSIONS = [
  '2025-01-01',
  '2025-02-02-preview',
  '2025-07-01',
  '2025-10-02-preview',
  '2026-01-01',
  '2026-07-01',
];

/** Data plane versions of the current (`executions`) generation. */
export const DATA_VERSIONS = ['2024-10-02-preview', '2025-02-02-preview', '2025-10-02-preview'];

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
