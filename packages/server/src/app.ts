/**
 * @module app
 * Builds the HTTP application from its dependencies without listening, so tests drive it through
 * `inject()` or a real socket and main.ts decides where it listens.
 */

import { randomUUID } from 'node:crypto';

import fastifyMultipart from '@fastify/multipart';
import Fastify, { LogController, type FastifyInstance, type FastifyReply } from 'fastify';
import type { Logger } from 'pino';
import { Type } from 'typebox';

import { clientRequestId, registerAudit } from './api/audit.js';
import { registerDashboard } from './api/dashboard.js';
import { RateLimits } from './api/rate-limit.js';
import { registerRequestPath } from './api/request-path.js';
import { AppError, ErrorCode } from './errors.js';
import { registerExecutionRoutes } from './api/data/execution-routes.js';
import { registerFileRoutes } from './api/data/file-routes.js';
import { registerSessionProxy } from './api/data/session-proxy.js';
import { registerSessionRoutes, type ImageMetadata } from './api/data/session-routes.js';
import { answerClientError, registerErrorHandling, renderError, wireOfPath } from './api/errors.js';
import { registerAccessRoutes } from './api/management/access-routes.js';
import { registerEventRoutes } from './api/management/event-routes.js';
import { registerTimelineRoutes } from './api/management/timeline-routes.js';
import { registerOpenApi, SHARED_SCHEMAS } from './api/openapi.js';
import { registerOperationsRoutes } from './api/operations-routes.js';
import { registerUsageRoutes } from './api/usage-routes.js';
import { registerNodeRoutes } from './api/node-routes.js';
import { checkResponses } from './api/response-contract.js';
import { route } from './api/schemas/common.js';
import { registerSessionPoolRoutes } from './api/management/session-pools.js';
import type { ApiKeys } from './auth/api-keys.js';
import type { Authenticator } from './auth/authenticator.js';
import type { CredentialWatch } from './auth/credential-watch.js';
import type { ForwardedPrincipals } from './auth/forwarded-principal.js';
import type { Tokens } from './auth/tokens.js';
import type { Config } from './config.js';
import type { EventFeed } from './observability/event-feed.js';
import type { Metrics, NodeMemory } from './observability/metrics.js';
import type { ConsoleLogArchive } from './pool/console-log.js';
import type { Executions } from './pool/executions.js';
import type { ClusterView } from './pool/cluster-view.js';
import type { NodeRegistry } from './pool/node-registry.js';
import type { PoolService } from './pool/pool-service.js';
import type { AuditJournal } from './store/audit-journal.js';
import type { Store } from './store/store.js';
import { SANDPOOL_VERSION } from './version.js';
import { registerMcpRoutes } from './api/mcp/mcp-routes.js';
import { registerProcessRoutes } from './api/data/process-routes.js';
import { registerPlatformMcpRoutes } from './api/mcp/platform-mcp-routes.js';
import { registerMcpCredentialRoutes } from './api/management/mcp-credential-routes.js';
import { McpServerKeys } from './pool/mcp-server-keys.js';
import type { InterpreterType } from './pool/pool-spec.js';
import { registerE2bControlRoutes } from './api/e2b/control-routes.js';
import { registerEnvdRoutes } from './api/e2b/envd-routes.js';
import { registerInterpreterRoutes } from './api/e2b/interpreter-routes.js';
import { registerSandboxPortRoutes } from './api/e2b/port-routes.js';
import { sandboxCredential } from './api/e2b/sandbox-credential.js';
import { SandboxConnections } from './api/e2b/sandbox-connections.js';
import { routedUrl } from './api/e2b/sandbox-routing.js';
import type { SandboxTokens } from './auth/sandbox-tokens.js';
import type { E2bSandboxes } from './pool/e2b-sandboxes.js';
import type { SessionSamples } from './pool/session-samples.js';

export interface AppDeps {
  config: Pick<
    Config,
    | 'poolFullStatus'
    | 'uploadMaxBytes'
    | 'maxSessionsPerPool'
    | 'minCooldownSeconds'
    | 'defaultSubscription'
    | 'rateLimitPerPrincipal'
    | 'rateLimitPerIdentifier'
    | 'rateLimitBurstSeconds'
  >;
  /** Base URL clients reach this server at (endpoints and poll URLs are built from it). */
  publicUrl: () => string;
  logger: Logger;
  store: Store;
  /** Where audit entries go on their way to the store. */
  auditJournal: AuditJournal;
  pools: PoolService;
  /** This server as a node: its registration, lease and drain. */
  nodes: NodeRegistry;
  /** The cluster as this node sees it: where requests for other nodes' sessions go. */
  cluster: ClusterView;
  /** Signs the principal of a request forwarded to another node. */
  forwardedPrincipals: ForwardedPrincipals;
  /** Runs and reads executions (the pool layer's use case). */
  executions: Executions;
  authenticator: Authenticator;
  apiKeys: ApiKeys;
  tokens: Tokens;
  /** Ends long-lived connections whose credential is revoked or expires. */
  credentials: CredentialWatch;
  imageMetadata: (type: InterpreterType) => Promise<ImageMetadata>;
  /** Console output of ended custom container sessions. */
  consoleLogs: ConsoleLogArchive;
  metrics: Metrics;
  feed: EventFeed;
  /** Whether sandboxes can start (readiness): resolves, or rejects saying why not. */
  runtimeUsable: () => Promise<void>;
  /** This node's memory as the memory guard last read it (readiness, the node list). */
  memory: () => NodeMemory;
  now: () => number;
  /** The built web dashboard, served at /dashboard/. */
  dashboardDir: string;
  /** E2B's front door: its sandboxes (sessions of the E2B templates' pools) and their tokens. */
  e2b: {
    sandboxes: E2bSandboxes;
    tokens: SandboxTokens;
    samples: SessionSamples;
    /** The domain E2B's SDKs build sandbox host names from; null: none. */
    domain: string | null;
  };
  /** TLS key and certificate; plain HTTP without. */
  https?: { key: Buffer; cert: Buffer };
  /** When set, every JSON response is checked against its route's schema and each mismatch reported. */
  onContractViolation?: (violation: string) => void;
}

/** JSON bodies (code included) are capped; file uploads have their own, larger limit. */
const JSON_BODY_LIMIT = 8 * 1024 * 1024;

export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: deps.logger,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: JSON_BODY_LIMIT,
    ...(deps.https && { https: deps.https }),
    // Every request gets an id of ours; the client's own (x-ms-client-request-id) is kept beside it.
    requestIdHeader: false,
    genReqId: () => randomUUID(),
    // Clients append a slash to the endpoint, or not.
    routerOptions: { ignoreTrailingSlash: true, ignoreDuplicateSlashes: true, maxParamLength: 1024 },
    clientErrorHandler: answerClientError,
    // E2B's SDKs name a sandbox's port by header or host name: its routes are below /e2b/sandbox.
    rewriteUrl: routedUrl,
    // The router's own refusals (a path that does not decode) leave in the same shape, through renderError.
    frameworkErrors: (error, request, reply) => {
      const rendered = renderError(
        error.code === 'FST_ERR_BAD_URL'
          ? new AppError(ErrorCode.InvalidUrl, 'The request path has a malformed percent-escape.')
          : error,
        { poolFullStatus: deps.config.poolFullStatus, form: wireOfPath(request.url) },
      );
      void (reply as FastifyReply).status(rendered.status).headers(rendered.headers).send(rendered.body);
    },
  }) as unknown as FastifyInstance;

  // Some clients label bodiless requests (DELETE session) as JSON; an empty body is no body. The
  // bytes are kept, for a request forwarded to the node that holds its session once it was read.
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (request, body, done) => {
    if (body.length === 0) {
      done(null, undefined);
      return;
    }
    request.rawBody = body as Buffer;
    void parseJson(request, body.toString(), done);
  });
  // Schemas document the contract and do not validate requests (see api/schemas/common.ts); replies
  // are plain JSON.stringify, so a schema never drops a field the handler sent.
  app.setValidatorCompiler(() => () => true);
  app.setSerializerCompiler(() => (data) => JSON.stringify(data));
  await registerOpenApi(app, SANDPOOL_VERSION);
  if (deps.onContractViolation) checkResponses(app, SHARED_SCHEMAS, deps.onContractViolation);

  await app.register(fastifyMultipart, {
    limits: { fileSize: deps.config.uploadMaxBytes, files: 1, fields: 16, parts: 32, fieldSize: 64 * 1024 },
  });
  registerErrorHandling(app, { poolFullStatus: deps.config.poolFullStatus });
  const rateLimits = new RateLimits({
    perPrincipal: deps.config.rateLimitPerPrincipal,
    perIdentifier: deps.config.rateLimitPerIdentifier,
    burstSeconds: deps.config.rateLimitBurstSeconds,
    now: deps.now,
  });
  const sessions = registerRequestPath(app, {
    authenticator: deps.authenticator,
    rateLimits,
    cluster: deps.cluster,
    forwardedPrincipals: deps.forwardedPrincipals,
    poolFullStatus: deps.config.poolFullStatus,
    sandboxCredential: sandboxCredential({
      sandboxes: deps.e2b.sandboxes,
      tokens: deps.e2b.tokens,
      now: deps.now,
    }),
  });
  registerSessionProxy(app, {
    pools: deps.pools,
    sessions,
    credentials: deps.credentials,
    log: deps.logger,
    poolFullStatus: deps.config.poolFullStatus,
    scheme: deps.https ? 'https' : 'http',
  });

  app.addHook('onSend', async (request, reply) => {
    void reply.header('x-ms-request-id', request.id);
    const clientId = clientRequestId(request);
    if (clientId !== null) void reply.header('x-ms-client-request-id', clientId);
  });
  app.addHook('onResponse', async (request, reply) => {
    deps.metrics.recordHttpRequest(
      { method: request.method, route: request.routeOptions.url ?? 'unmatched', status: reply.statusCode },
      reply.elapsedTime / 1000,
    );
    request.log.info(
      {
        method: request.method,
        route: request.routeOptions.url,
        status: reply.statusCode,
        ms: Math.round(reply.elapsedTime * 10) / 10,
        principal: (request.principal as typeof request.principal | null)?.id,
      },
      'http.request',
    );
  });

  registerAudit(app, {
    store: deps.store,
    journal: deps.auditJournal,
    now: deps.now,
    publicUrl: deps.publicUrl,
  });
  registerUsageRoutes(app, { store: deps.store, now: deps.now });
  registerNodeRoutes(app, { nodes: deps.nodes });

  app.get(
    '/healthz',
    route({
      operationId: 'Health_Get',
      access: 'public',
      summary: 'The process is up (no credential needed)',
      tag: 'Health',
      response: { 200: Type.Object({ status: Type.Literal('ok') }) },
    }),
    () => ({ status: 'ok' }),
  );

  await registerDashboard(app, deps.dashboardDir);
  registerSessionPoolRoutes(app, {
    pools: deps.pools,
    limits: {
      maxSessionsPerPool: deps.config.maxSessionsPerPool,
      minCooldownSeconds: deps.config.minCooldownSeconds,
    },
    publicUrl: deps.publicUrl,
  });
  registerEventRoutes(app, {
    pools: deps.pools,
    store: deps.store,
    feed: deps.feed,
    credentials: deps.credentials,
    publicUrl: deps.publicUrl,
  });
  registerTimelineRoutes(app, { pools: deps.pools, metrics: deps.metrics });
  registerAccessRoutes(app, {
    apiKeys: deps.apiKeys,
    tokens: deps.tokens,
    defaultSubscription: deps.config.defaultSubscription,
  });
  registerExecutionRoutes(app, {
    pools: deps.pools,
    sessions,
    executions: deps.executions,
    publicUrl: deps.publicUrl,
  });
  registerOperationsRoutes(app, {
    store: deps.store,
    pools: deps.pools,
    metrics: deps.metrics,
    runtimeUsable: deps.runtimeUsable,
    memory: deps.memory,
    audit: () => deps.auditJournal.backlog(),
    authenticator: deps.authenticator,
  });
  registerFileRoutes(app, { pools: deps.pools, sessions, uploadMaxBytes: deps.config.uploadMaxBytes });
  registerProcessRoutes(app, { pools: deps.pools, sessions });
  registerMcpRoutes(app, {
    pools: deps.pools,
    rateLimits,
    executions: deps.executions,
    credentials: deps.credentials,
    now: deps.now,
    version: SANDPOOL_VERSION,
  });
  const mcpKeys = new McpServerKeys(deps.store);
  registerPlatformMcpRoutes(app, {
    pools: deps.pools,
    rateLimits,
    executions: deps.executions,
    keys: mcpKeys,
    version: SANDPOOL_VERSION,
  });
  registerMcpCredentialRoutes(app, { pools: deps.pools, keys: mcpKeys });
  registerSessionRoutes(app, {
    pools: deps.pools,
    sessions,
    publicUrl: deps.publicUrl,
    imageMetadata: deps.imageMetadata,
    consoleLogs: deps.consoleLogs,
  });
  const connections = new SandboxConnections(deps.feed);
  registerE2bControlRoutes(app, { ...deps.e2b, sessions, connections });
  await registerEnvdRoutes(app, {
    sandboxes: deps.e2b.sandboxes,
    sessions,
    connections,
    uploadMaxBytes: deps.config.uploadMaxBytes,
  });
  registerInterpreterRoutes(app, { sandboxes: deps.e2b.sandboxes, sessions, connections, now: deps.now });
  registerSandboxPortRoutes(app, {
    sandboxes: deps.e2b.sandboxes,
    sessions,
    connections,
    scheme: deps.https ? 'https' : 'http',
    poolFullStatus: deps.config.poolFullStatus,
  });
  return app;
}
