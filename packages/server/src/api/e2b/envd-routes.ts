/**
 * @module api/e2b/envd-routes
 * envd's routes, as E2B's SDKs address it (port 49983, taken below SANDBOX_PREFIX): its Connect
 * services (api/e2b/envd-services) served by Connect's own library at their procedure paths,
 * `/files` (download, gzip when asked; upload as multipart or as the body itself) and `/health`.
 * Each takes the request path with the sandbox's own token and reaches the sandbox where it is held;
 * its body is read only there, so a forwarded call streams through untouched.
 */

import { Readable } from 'node:stream';
import { createGunzip, createGzip } from 'node:zlib';

import { Code, ConnectError, createConnectRouter, createContextValues } from '@connectrpc/connect';
import { universalRequestFromNodeRequest, universalResponseToNodeResponse } from '@connectrpc/connect-node';
import * as protoConnect from '@connectrpc/connect/protocol-connect';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

import { textOf } from '../wire.js';
import { AppError, ErrorCode } from '../../errors.js';
import { EnvdRefusal, type EnvdClient } from '../../pool/e2b-sandboxes.js';
import type { Session } from '../../pool/pool-manager.js';
import { sandboxRoutes } from '../schemas/e2b.js';
import { SESSION, envdServices } from './envd-services.js';
import { reachSandbox, type SandboxReachDeps } from './sandbox-reach.js';
import { ENVD_PORT, SANDBOX_PREFIX } from './sandbox-routing.js';

/** The procedures that change nothing: every other call is audited. */
const READS = new Set(['Stat', 'ListDir', 'List', 'GetWatcherEvents', 'WatchDir', 'Connect']);
/** What one write to the envd agent carries of an upload (base64 makes it a third larger). */
const UPLOAD_CHUNK_BYTES = 1024 * 1024;
/** A Connect request's body at most (a command's stdin, a path): Connect's own limit, lowered. */
const RPC_READ_MAX_BYTES = 16 * 1024 * 1024;

export interface EnvdRoutesDeps extends SandboxReachDeps {
  uploadMaxBytes: number;
}

/** An envd agent's refusal as the HTTP error E2B's envd answers `/files` with. */
function fileError(error: unknown, path: string): unknown {
  if (!(error instanceof EnvdRefusal)) return error;
  switch (error.code) {
    case 'not_found':
      return new AppError(ErrorCode.FileNotFound, `path '${path}' does not exist`);
    case 'invalid_argument':
    case 'already_exists':
      return new AppError(ErrorCode.InvalidParameter, error.message, { target: 'path' });
    case 'permission_denied':
      return new AppError(ErrorCode.AuthorizationFailed, error.message);
    case 'resource_exhausted':
      return new AppError(ErrorCode.SessionStorageFull, error.message);
    case 'canceled':
    case 'failed_precondition':
    case 'internal':
    case 'unavailable':
    case 'unimplemented':
      return new AppError(ErrorCode.AgentProtocolError, error.message);
  }
}

function requirePath(path: string | undefined): string {
  if (path === undefined || path === '') {
    throw new AppError(ErrorCode.InvalidParameter, 'path is required', { target: 'path' });
  }
  return path;
}

/** Writes `source` to `path` in the sandbox, a chunk at a time; the entry's name and path. */
async function upload(
  agent: EnvdClient,
  path: string,
  source: Readable,
  maxBytes: number,
): Promise<{ name: string; type: 'file'; path: string }> {
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let total = 0;
  let flushes = 0;
  let entry: Record<string, unknown> | undefined;
  const flush = async () => {
    const data = Buffer.concat(pending).toString('base64');
    pending = [];
    pendingBytes = 0;
    const reply = await agent
      .request('fs.write', { path, data, append: flushes > 0 })
      .catch((error: unknown) => {
        throw fileError(error, path);
      });
    flushes += 1;
    entry = reply.entry as Record<string, unknown> | undefined;
  };
  for await (const chunk of source) {
    const bytes = chunk as Buffer;
    total += bytes.length;
    if (total > maxBytes) {
      throw new AppError(ErrorCode.PayloadTooLarge, `Uploads are limited to ${maxBytes} bytes per file.`);
    }
    pending.push(bytes);
    pendingBytes += bytes.length;
    if (pendingBytes >= UPLOAD_CHUNK_BYTES) await flush();
  }
  // An empty file is written once too.
  if (flushes === 0 || pendingBytes > 0) await flush();
  return { name: textOf(entry?.name), type: 'file', path: textOf(entry?.path) || path };
}

export async function registerEnvdRoutes(app: FastifyInstance, deps: EnvdRoutesDeps): Promise<void> {
  const prefix = `${SANDBOX_PREFIX}/${ENVD_PORT}`;
  const reach = async (request: FastifyRequest, reply: FastifyReply) =>
    (await reachSandbox(deps, request, reply))?.session;
  const agentOf = (session: Session) => session.instance.envd();

  await app.register((scope, _options, done) => {
    // Bodies are read where the sandbox is: by Connect, by the upload, or by the node it goes to.
    scope.removeContentTypeParser('application/json');
    scope.addContentTypeParser(
      [protoConnect.contentTypeUnaryJson, protoConnect.contentTypeStreamJson, 'application/octet-stream'],
      (_request, _payload, done) => done(null, undefined),
    );
    scope.addContentTypeParser(protoConnect.contentTypeRegExp, (_request, _payload, done) =>
      done(null, undefined),
    );

    const router = envdServices(
      createConnectRouter({ grpc: false, grpcWeb: false, readMaxBytes: RPC_READ_MAX_BYTES }),
    );
    for (const handler of router.handlers) {
      const service = handler.service.typeName;
      const method = handler.method.name;
      const streams = handler.method.methodKind === 'server_streaming';
      scope.post(
        `${prefix}${handler.requestPath}`,
        sandboxRoutes.rpc(service, method, streams, !READS.has(method)),
        async (request, reply) => {
          const session = await reach(request, reply);
          if (!session) return reply;
          reply.hijack();
          try {
            const answer = await handler(
              universalRequestFromNodeRequest(
                request.raw,
                reply.raw,
                undefined,
                createContextValues().set(SESSION, session),
              ),
            );
            await universalResponseToNodeResponse(answer, reply.raw);
          } catch (error) {
            if (ConnectError.from(error).code !== Code.Aborted) {
              request.log.error({ err: error, rpc: `${service}/${method}` }, 'envd call failed');
            }
            reply.raw.destroy();
          }
          return reply;
        },
      );
    }

    scope.get(`${prefix}/health`, sandboxRoutes.envdHealth, async (request, reply) => {
      const session = await reach(request, reply);
      if (!session) return reply;
      await agentOf(session);
      return reply.status(204).send();
    });

    const download = async (request: FastifyRequest, reply: FastifyReply) => {
      const query = request.query as { path?: string };
      const path = requirePath(query.path);
      const session = await reach(request, reply);
      if (!session) return reply;
      const agent = await agentOf(session);
      const body = new Readable({ read() {} });
      // The head waits for the first chunk (or the end): a missing file is a 404, not a cut stream.
      const started = Promise.withResolvers<undefined>();
      const read = agent.request('fs.read', { path }, (event) => {
        if (event.event !== 'chunk') return;
        started.resolve(undefined);
        body.push(Buffer.from(textOf(event.data), 'base64'));
      });
      read.then(
        () => {
          started.resolve(undefined);
          body.push(null);
        },
        (error: unknown) => {
          started.reject(fileError(error, path));
          // Before the first chunk nothing reads the body yet: the 404 answers, and an error event would go unheard.
          body.destroy(body.readableDidRead || body.readableFlowing ? (error as Error) : undefined);
        },
      );
      reply.raw.once('close', () => body.destroy());
      await started.promise;
      const gzip = /\bgzip\b/.test(request.headers['accept-encoding'] ?? '');
      void reply
        .header('content-type', 'application/octet-stream')
        .header(
          'content-disposition',
          `attachment; filename="${encodeURIComponent(path.split('/').at(-1) ?? '')}"`,
        );
      if (gzip) void reply.header('content-encoding', 'gzip');
      return reply.send(gzip ? body.pipe(createGzip()) : body);
    };

    const receive = async (request: FastifyRequest, reply: FastifyReply) => {
      const query = request.query as { path?: string };
      const session = await reach(request, reply);
      if (!session) return reply;
      const agent = await agentOf(session);
      const written: { name: string; type: 'file'; path: string }[] = [];
      if (request.isMultipart()) {
        // Several files in one body name their paths in the parts' file names, so the paths stay whole.
        const parts = request.parts({
          preservePath: true,
          limits: { fileSize: deps.uploadMaxBytes, files: 1000, parts: 1000 },
        });
        for await (const part of parts) {
          if (part.type !== 'file') continue;
          const path = requirePath(query.path ?? part.filename);
          written.push(await upload(agent, path, part.file, deps.uploadMaxBytes));
          if (part.file.truncated) {
            throw new AppError(
              ErrorCode.PayloadTooLarge,
              `Uploads are limited to ${deps.uploadMaxBytes} bytes per file.`,
            );
          }
        }
      } else {
        const path = requirePath(query.path);
        const encoding = request.headers['content-encoding'];
        const source =
          encoding === 'gzip'
            ? request.raw.pipe(createGunzip())
            : encoding === undefined || encoding === 'identity'
              ? request.raw
              : undefined;
        if (!source) {
          throw new AppError(
            ErrorCode.UnsupportedMediaType,
            `Content-Encoding ${encoding} is not supported; send gzip or none.`,
          );
        }
        written.push(await upload(agent, path, source, deps.uploadMaxBytes));
      }
      if (written.length === 0) {
        throw new AppError(ErrorCode.InvalidRequestContent, 'The multipart body holds no file.');
      }
      return written;
    };

    // A signed URL made for one sandbox URL names no sandbox: its signature does (api/e2b/sandbox-credential).
    scope.get(`${prefix}/files`, sandboxRoutes.download, download);
    scope.post(`${prefix}/files`, sandboxRoutes.upload, receive);
    scope.get('/files', sandboxRoutes.signedDownload, download);
    scope.post('/files', sandboxRoutes.signedUpload, receive);
    done();
  });
}
