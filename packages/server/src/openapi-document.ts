/**
 * @module openapi-document
 * Renders the OpenAPI document from the app's routes without a store, pools or sandboxes: route
 * registration reads none of them. `scripts/gen-openapi.ts` writes the result to `openapi.json`, and
 * a test fails when the committed file differs.
 */

import { pino } from 'pino';

import { buildApp, type AppDeps } from './app.js';
import { EventFeed } from './observability/event-feed.js';
import { Metrics } from './observability/metrics.js';

/** Stands in for a dependency that building the routes must not touch. */
const unused = new Proxy(
  {},
  {
    get(_target, property) {
      throw new Error(`rendering the OpenAPI document touched a runtime dependency (${String(property)})`);
    },
  },
);

export async function renderOpenApiDocument(): Promise<string> {
  /* eslint-disable @typescript-eslint/no-unsafe-class-instance-assignment -- stand-ins that throw if touched */
  const deps: AppDeps = {
    config: {
      poolFullStatus: 429,
      uploadMaxBytes: 1,
      maxSessionsPerPool: 1,
      minCooldownSeconds: 300,
      defaultSubscription: '',
      rateLimitPerPrincipal: 0,
      rateLimitPerIdentifier: 0,
      rateLimitBurstSeconds: 1,
    },
    publicUrl: () => '',
    logger: pino({ level: 'silent' }),
    store: unused as AppDeps['store'],
    auditJournal: unused as AppDeps['auditJournal'],
    pools: unused as AppDeps['pools'],
    nodes: unused as AppDeps['nodes'],
    cluster: unused as AppDeps['cluster'],
    forwardedPrincipals: unused as AppDeps['forwardedPrincipals'],
    executions: unused as AppDeps['executions'],
    authenticator: unused as AppDeps['authenticator'],
    apiKeys: unused as AppDeps['apiKeys'],
    tokens: unused as AppDeps['tokens'],
    credentials: unused as AppDeps['credentials'],
    imageMetadata: () => Promise.reject(new Error('unused')),
    consoleLogs: unused as AppDeps['consoleLogs'],
    metrics: new Metrics(),
    feed: new EventFeed(),
    runtimeUsable: () => Promise.resolve(),
    memory: () => {
      throw new Error('unused');
    },
    now: Date.now,
    dashboardDir: '/nonexistent',
    e2b: {
      sandboxes: unused as AppDeps['e2b']['sandboxes'],
      tokens: unused as AppDeps['e2b']['tokens'],
      samples: unused as AppDeps['e2b']['samples'],
      domain: null,
    },
  };
  /* eslint-enable @typescript-eslint/no-unsafe-class-instance-assignment */
  const app = await buildApp(deps);
  await app.ready();
  const document = app.swagger();
  await app.close();
  return `${JSON.stringify(document, null, 2)}\n`;
}
