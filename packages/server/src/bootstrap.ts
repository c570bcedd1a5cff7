/**
 * @module bootstrap
 * What the first start of a server on an empty store sets up, once: an admin API key (its secret
 * shown once, or the one the configuration names), the configured default pool, and the E2B
 * templates (pools of the E2B resource group). A store set up before E2B's API came gets its
 * templates on its next start.
 */

import { poolId } from './arm-id.js';
import type { ApiKeys } from './auth/api-keys.js';
import { parseGrant } from './auth/roles.js';
import type { Config } from './config.js';
import type { PoolService } from './pool/pool-service.js';
import { pythonPoolSpec } from './pool/pool-spec.js';
import type { Store } from './store/store.js';

const BOOTSTRAPPED = 'server.bootstrapped';
const E2B_TEMPLATES_CREATED = 'e2b.templatesCreated';
const ADMIN_GRANTS = ['Contributor', 'SessionExecutor', 'Reader'].map(parseGrant);

/** Sets up a first start; returns the admin key's secret when it did (undefined on later starts). */
export async function bootstrap(deps: {
  config: Config;
  store: Store;
  apiKeys: ApiKeys;
  pools: PoolService;
  now: () => number;
}): Promise<string | undefined> {
  const { config, store } = deps;
  if ((await store.getSetting(E2B_TEMPLATES_CREATED)) === undefined) {
    for (const name of config.e2bTemplates) {
      const existing = await store.getPool(poolId(config.defaultSubscription, config.e2bResourceGroup, name));
      if (existing) continue;
      await deps.pools.put({
        subscription: config.defaultSubscription,
        resourceGroup: config.e2bResourceGroup,
        name,
        location: 'local',
        tags: { e2bTemplate: name },
        spec: pythonPoolSpec({ runtime: config.runtime }),
      });
    }
    await store.putSetting(E2B_TEMPLATES_CREATED, new Date(deps.now()).toISOString());
  }
  if ((await store.getSetting(BOOTSTRAPPED)) !== undefined) return undefined;
  const { secret } = await deps.apiKeys.create('bootstrap admin', ADMIN_GRANTS, {
    ...(config.bootstrapApiKey && { secret: config.bootstrapApiKey }),
  });
  if (config.defaultPool) {
    await deps.pools.put({
      subscription: config.defaultSubscription,
      resourceGroup: config.defaultResourceGroup,
      name: config.defaultPool,
      location: 'local',
      tags: {},
      spec: pythonPoolSpec({ runtime: config.runtime }),
    });
  }
  await store.putSetting(BOOTSTRAPPED, new Date(deps.now()).toISOString());
  return secret;
}
