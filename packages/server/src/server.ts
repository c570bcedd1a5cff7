/**
 * @module server
 * Assembles a running Sandpool from its configuration: store, sandbox driver, pools, credentials and
 * the HTTP app, listening. Shared by main.ts and the end-to-end tests, which start real servers.
 */

import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';

import type { ImageMetadata } from './api/data/session-routes.js';
import { buildApp } from './app.js';
import { bootstrap } from './bootstrap.js';
import { ApiKeys } from './auth/api-keys.js';
import { Authenticator } from './auth/authenticator.js';
import { CredentialWatch } from './auth/credential-watch.js';
import { Tokens } from './auth/tokens.js';
import type { Config } from './config.js';
import { EventFeed } from './observability/event-feed.js';
import { createLogger } from './observability/logger.js';
import { Metrics } from './observability/metrics.js';
import { ConsoleLogArchive } from './pool/console-log.js';
import type { ImageSource } from './pool/container-image.js';
import { HostLauncher } from './pool/launcher.js';
import { MemoryGuard } from './pool/memory-guard.js';
import type { InstanceLauncher } from './pool/instance.js';
import { poolId } from './arm-id.js';
import { Executions } from './pool/executions.js';
import { PoolService } from './pool/pool-service.js';
import { ClusterView } from './pool/cluster-view.js';
import { ForwardedPrincipals } from './auth/forwarded-principal.js';
import { NodeRegistry } from './pool/node-registry.js';
import { keepPruning } from './pool/retention.js';
import { DEFAULT_RESOURCES } from './sandbox/driver.js';
import { ImagePuller } from './sandbox/image/image-puller.js';
import { OciDriver } from './sandbox/oci/oci-driver.js';
import { SANDBOX_OOM_SCORE_ADJ, protectFromOomKiller } from './sandbox/oom-score.js';
import { runCommand } from './sandbox/command.js';
import { runtimeCheck } from './sandbox/runtime-check.js';
import { AuditJournal } from './store/audit-journal.js';
import { PostgresStore } from './store/postgres-store.js';
import { Sealer } from './store/sealer.js';
import { SqliteStore } from './store/sqlite-store.js';
import type { Store } from './store/store.js';
import { loadTls } from './tls.js';
import { protectHome } from './home.js';
import type { InterpreterType } from './pool/pool-spec.js';
import { SandboxTokens } from './auth/sandbox-tokens.js';
import { E2bSandboxes } from './pool/e2b-sandboxes.js';
import { SessionSamples } from './pool/session-samples.js';

export interface RunningServer {
  app: FastifyInstance;
  url: string;
  store: Store;
  pools: PoolService;
  /** The bootstrap admin key when this start created it (shown once). */
  bootstrapKey: string | undefined;
  tlsFingerprint: string | undefined;
  /** Stops serving; sandboxes keep running for the next start. */
  close(): Promise<void>;
}

export interface ServerOverrides {
  logger?: Logger;
  now?: () => number;
  launcher?: InstanceLauncher;
  /** Where custom container images come from (a fake beside a fake launcher). */
  images?: ImageSource;
  /** Checks every JSON response against its documented schema and reports mismatches (tests). */
  onContractViolation?: (violation: string) => void;
}

export async function startServer(config: Config, overrides: ServerOverrides = {}): Promise<RunningServer> {
  const now = overrides.now ?? Date.now;
  const logger = overrides.logger ?? createLogger(config.logLevel);
  await protectHome(config.home);
  const sealer = Sealer.fromFile(config.paths.storeKeys);
  const store = config.store
    ? await PostgresStore.open(config.store, sealer)
    : await SqliteStore.open(config.paths.database, sealer);
  const auditJournal = AuditJournal.open(join(config.home, 'audit.journal'), store, {
    storeFailed: (error, waiting) =>
      logger.error({ err: error, waiting }, 'audit entries wait in the journal: the store refused them'),
    caughtUp: (stored) => logger.info({ stored }, 'audit journal caught up: every waiting entry is stored'),
  });
  const executions = new Executions({ store, log: logger, now });
  await executions.failInterrupted();

  const images = new ImagePuller({
    cacheDir: config.paths.imageCacheDir,
    insecureRegistries: config.insecureRegistries,
    internalRegistries: config.internalRegistries,
    run: runCommand,
    timeoutMs: config.imagePullTimeoutSeconds * 1000,
  });
  const consoleLogs = new ConsoleLogArchive(config.paths.sessionLogsDir);
  const launcher =
    overrides.launcher ??
    new HostLauncher(OciDriver.fromConfig(config), {
      interpreter: {
        image: { rootfs: config.paths.pythonRootfs, agentDir: config.paths.pythonAgentDir },
        nodeImage: { rootfs: config.paths.nodeRootfs, agentDir: config.paths.nodeAgentDir, agent: 'node' },
        agent: { connectTimeoutMs: config.agentStartTimeoutSeconds * 1000, interruptGraceMs: 2_000 },
        fork: config.zygote,
      },
      containers: { images, logs: consoleLogs },
      limits: {
        pids: DEFAULT_RESOURCES.pids,
        dataBytes: DEFAULT_RESOURCES.dataBytes,
        tmpBytes: DEFAULT_RESOURCES.tmpBytes,
      },
    });
  const metrics = new Metrics(now, config.nodeName);
  const feed = new EventFeed();
  const capacity = {
    sandboxes: config.maxSandboxes,
    cpu: config.nodeCpu,
    memoryBytes: config.nodeMemoryGib * 1024 ** 3,
  };
  const cluster: ClusterView = new ClusterView({
    self: config.nodeName,
    capacity,
    localReservation: () => pools.nodeReservation(),
    sizeOf: (poolId) => pools.sandboxSize(poolId),
    draining: (): boolean => nodes.draining,
    memoryPressure: (): boolean => memoryGuard.underPressure,
    now,
  });
  const pools = new PoolService({
    store,
    launcher,
    log: logger,
    now,
    refillParallelism: config.refillParallelism,
    reaperIntervalMs: config.reaperIntervalMs,
    metrics,
    feed,
    images: overrides.images ?? images,
    cluster,
  });
  const memoryGuard = new MemoryGuard({
    read: () => launcher.memory(),
    committedBytes: () => pools.nodeReservation().memoryBytes,
    allocatableBytes: capacity.memoryBytes,
    pressureRatio: config.memoryPressurePercent / 100,
    candidates: () => pools.pressureCandidates(),
    ended: (victim) => metrics.recordPressureEnd(victim.pool, victim.kind),
    log: logger,
    intervalMs: config.memoryCheckIntervalMs,
  });
  metrics.observeMemory(() => memoryGuard.status());
  metrics.observeAuditBacklog(() => auditJournal.backlog().waiting);
  metrics.observePools(
    () => pools.snapshot(),
    () => pools.liveUsage(),
  );
  metrics.observeCluster({
    sandboxes: () =>
      cluster.sandboxTotals().flatMap(({ poolId, state, count }) => {
        const pool = pools.manager(poolId)?.metricLabel;
        return pool === undefined ? [] : [{ pool, state, count }];
      }),
    nodes: () => cluster.nodeTotals(),
    capacity,
    reserved: () => pools.nodeReservation(),
  });
  const nodes = new NodeRegistry({
    store,
    pools,
    cluster,
    log: logger,
    now,
    name: config.nodeName,
    capacity,
    leaseSeconds: config.nodeLeaseSeconds,
    memory: () => memoryGuard.status(),
  });
  await pools.start();
  await memoryGuard.check();
  memoryGuard.start();
  const oomScoreAdj = await protectFromOomKiller();
  if (oomScoreAdj >= 0) {
    logger.warn(
      { oomScoreAdj, sandboxOomScoreAdj: SANDBOX_OOM_SCORE_ADJ },
      'the server cannot lower its OOM score without CAP_SYS_RESOURCE; sandboxes stay the kernel’s first choice',
    );
  }

  const apiKeys = new ApiKeys(store, now);
  await apiKeys.start();
  const credentials = new CredentialWatch(now);
  apiKeys.onRevoked((keyId) => credentials.revoked(keyId));
  const tokens = await Tokens.create({
    store,
    audiences: config.audiences,
    oidcIssuers: config.oidcIssuers,
    now,
    isKeyActive: (keyId) => apiKeys.isActive(keyId),
  });
  const forwardedPrincipals = await ForwardedPrincipals.fromStore(store, now);
  const sandboxTokens = await SandboxTokens.fromStore(store, (keyId) => apiKeys.isActive(keyId));
  const e2bSandboxes = new E2bSandboxes({
    pools,
    store,
    now,
    settings: {
      subscription: config.defaultSubscription,
      resourceGroup: config.e2bResourceGroup,
      defaultTimeoutSeconds: config.e2bDefaultTimeoutSeconds,
      maxTimeoutSeconds: config.e2bMaxTimeoutSeconds,
    },
  });
  const sessionSamples = new SessionSamples(now);
  const bootstrapKey = await bootstrap({ config, store, apiKeys, pools, now });

  const tls =
    config.tls === 'off'
      ? undefined
      : await loadTls(
          {
            certFile: config.tlsCert,
            keyFile: config.tlsKey,
            dir: config.paths.tlsDir,
            hostnames: ['localhost', '127.0.0.1', '::1', config.host],
          },
          runCommand,
        );
  const metadata = new Map<string, Promise<ImageMetadata>>();
  const imageMetadata = (type: InterpreterType) => {
    const rootfs = type === 'NodeLTS' ? config.paths.nodeRootfs : config.paths.pythonRootfs;
    let read = metadata.get(rootfs);
    if (!read) {
      read = readFile(join(rootfs, 'etc', 'sandpool', 'image.json'), 'utf8').then(
        (text) => JSON.parse(text) as ImageMetadata,
      );
      // A failed read (no image built yet) is tried again next time.
      read.catch(() => metadata.delete(rootfs));
      metadata.set(rootfs, read);
    }
    return read;
  };

  const stopPruning = keepPruning(config, {
    store,
    consoleLogs,
    log: logger,
    now,
    leads: () => nodes.leading,
  });

  const base = { url: config.publicUrl.replace(/\/+$/, '') };
  const app = await buildApp({
    config,
    publicUrl: () => base.url,
    logger,
    store,
    auditJournal,
    pools,
    nodes,
    executions,
    authenticator: new Authenticator(apiKeys, tokens, forwardedPrincipals),
    cluster,
    forwardedPrincipals,
    apiKeys,
    tokens,
    credentials,
    imageMetadata,
    consoleLogs,
    metrics,
    feed,
    runtimeUsable: overrides.launcher ? () => Promise.resolve() : runtimeCheck(config),
    memory: () => memoryGuard.status(),
    now,
    dashboardDir: config.paths.dashboardDir,
    e2b: {
      sandboxes: e2bSandboxes,
      tokens: sandboxTokens,
      samples: sessionSamples,
      domain: config.e2bDomain || null,
    },
    ...(tls && { https: { key: tls.key, cert: tls.cert } }),
    ...(overrides.onContractViolation && { onContractViolation: overrides.onContractViolation }),
  });
  await app.listen({ host: config.host, port: config.port });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  const host = config.host.includes(':')
    ? `[${config.host}]`
    : config.host === '0.0.0.0'
      ? '127.0.0.1'
      : config.host;
  const url = `${tls ? 'https' : 'http'}://${host}:${port}`;
  base.url ||= url;
  await nodes.start(config.nodeUrl || url);

  const defaultPool = config.defaultPool
    ? await store.getPool(poolId(config.defaultSubscription, config.defaultResourceGroup, config.defaultPool))
    : undefined;
  logger.info(
    {
      url: base.url,
      management: `${base.url}/subscriptions/{subscription}/resourceGroups/{resourceGroup}/providers/Microsoft.App/sessionPools/{name}?api-version=2025-07-01`,
      defaultPoolEndpoint:
        defaultPool &&
        `${base.url}/subscriptions/${defaultPool.subscription}/resourceGroups/${defaultPool.resourceGroup}/sessionPools/${defaultPool.name}`,
      tlsFingerprint: tls?.fingerprint,
    },
    'sandpool.ready',
  );

  let closing: Promise<void> | undefined;
  return {
    app,
    url: base.url,
    store,
    pools,
    bootstrapKey,
    tlsFingerprint: tls?.fingerprint,
    // Idempotent: a second close (a second signal, a test's own teardown) waits for the first.
    close() {
      closing ??= (async () => {
        stopPruning();
        sessionSamples.stop();
        await nodes.stop();
        apiKeys.stop();
        await app.close();
        await memoryGuard.stop();
        await pools.stop();
        await auditJournal.close();
        await store.close();
      })();
      return closing;
    },
  };
}
