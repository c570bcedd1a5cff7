/**
 * @module arm-id
 * ARM resource ids of the scopes Sandpool knows (subscription, resource group, session pool), in
 * their one canonical form: lower-cased, since ARM compares ids case-insensitively. Grants name
 * these scopes, the store keys pools by them, and every route checks the segments a request names
 * against Azure's rules before anything is looked up or created.
 */

import { AppError, ErrorCode } from './errors.js';

/** Azure subscription ids are GUIDs. */
const SUBSCRIPTION = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** Azure's resource group rule: 1–90 letters, digits, `_ - . ( )`, not ending in a period. */
const RESOURCE_GROUP = /^[\p{L}\p{N}_\-.()]{0,89}[\p{L}\p{N}_\-()]$/u;
/** Session pool names: 3–63 lower-case letters and digits, starting with a letter. */
export const POOL_NAME = /^[a-z][a-z0-9]{2,62}$/;
/**
 * E2B template ids, which name the pools of the E2B resource group (`code-interpreter-v1`): 2–32
 * lower-case letters, digits and inner hyphens. Sandpool creates these pools itself, so ids and
 * grants name them, while Azure's PUT keeps Azure's rule.
 */
export const TEMPLATE_POOL_NAME = /^[a-z0-9][a-z0-9-]{0,30}[a-z0-9]$/;

export function validateSubscription(subscription: string): void {
  if (!SUBSCRIPTION.test(subscription)) {
    throw new AppError(
      ErrorCode.InvalidSubscriptionId,
      `The provided subscription identifier '${printable(subscription)}' is malformed or invalid: it must be a GUID.`,
      { target: 'subscriptionId' },
    );
  }
}

export function validateResourceGroup(resourceGroup: string): void {
  if (!RESOURCE_GROUP.test(resourceGroup)) {
    throw new AppError(
      ErrorCode.InvalidResourceGroupName,
      `The resource group name '${printable(resourceGroup)}' is invalid: use 1 to 90 letters, digits, underscores, hyphens, periods and parentheses, not ending in a period.`,
      { target: 'resourceGroupName' },
    );
  }
}

/** A name echoed in an error: control characters shown as escapes, and at most 100 of them. */
function printable(text: string): string {
  return JSON.stringify(text.slice(0, 100)).slice(1, -1);
}

export const subscriptionId = (subscription: string) => `/subscriptions/${subscription}`.toLowerCase();

export const resourceGroupId = (subscription: string, resourceGroup: string) =>
  `${subscriptionId(subscription)}/resourcegroups/${resourceGroup.toLowerCase()}`;

/** The ARM id of a session pool, lower-cased. */
export const poolId = (subscription: string, resourceGroup: string, name: string) =>
  `${resourceGroupId(subscription, resourceGroup)}/providers/microsoft.app/sessionpools/${name.toLowerCase()}`;

/**
 * Parses an ARM scope as people write it (any case): a subscription, a resource group or a session
 * pool. Returns its canonical id, or undefined for anything else.
 */
export function parseScope(text: string): string | undefined {
  const parts = text.split('/');
  if (parts[0] !== '' || parts[1]?.toLowerCase() !== 'subscriptions') return undefined;
  const [, , subscription, rgWord, resourceGroup, providers, namespace, type, name, ...extra] = parts;
  if (subscription === undefined || !SUBSCRIPTION.test(subscription)) return undefined;
  if (rgWord === undefined) return subscriptionId(subscription);
  if (rgWord.toLowerCase() !== 'resourcegroups' || resourceGroup === undefined) return undefined;
  if (!RESOURCE_GROUP.test(resourceGroup)) return undefined;
  if (providers === undefined) return resourceGroupId(subscription, resourceGroup);
  const isPool =
    providers.toLowerCase() === 'providers' &&
    namespace?.toLowerCase() === 'microsoft.app' &&
    type?.toLowerCase() === 'sessionpools' &&
    name !== undefined &&
    (POOL_NAME.test(name.toLowerCase()) || TEMPLATE_POOL_NAME.test(name.toLowerCase())) &&
    extra.length === 0;
  return isPool ? poolId(subscription, resourceGroup, name) : undefined;
}

/** Whether `scope` (a canonical id, or '*' for everything) contains the resource `id`. */
export function scopeContains(scope: string, id: string): boolean {
  return scope === '*' || id === scope || id.startsWith(`${scope}/`);
}
