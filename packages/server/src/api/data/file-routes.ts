/**
 * @module api/data/file-routes
 * The session's files under `/mnt/data`: list (`path`, `recursive`), upload (multipart field `file`,
 * a bare name or `/mnt/data/<name>`), metadata, content and delete. Each request reaches (or
 * allocates) the identifier's session like Azure's do, and resets its cooldown.
 */

import type { FastifyInstance, FastifyRequest } from 'fastify';

import { AppError, ErrorCode } from '../../errors.js';
import type { PoolService } from '../../pool/pool-service.js';
import { DataDirectory, type DataFile } from '../../sandbox/data-dir.js';
import { optionalBoolean, type JsonRecord } from '../wire.js';
import { POOL_ENDPOINT, poolFor, requireIdentifier, sessionHeaders } from './pool-endpoint.js';

/** The current generation's `SessionResourceFile`. */
export function fileResource(file: DataFile): JsonRecord {
  return {
    name: file.name,
    type: file.type === 'directory' ? 'Directory' : 'File',
    contentType: file.contentType,
    sizeInBytes: file.sizeInBytes,
    lastModifiedAt: file.lastModifiedAt,
    directory: file.directory === '' ? '/mnt/data' : `/mnt/data/${file.directory}`,
  };
}

const joinPath = (directory: string | undefined, name: string) =>
  directory ? `${directory.replace(/\/+$/, '')}/${name}` : name;

export function registerFileRoutes(
  app: FastifyInstance,
  deps: { pools: PoolService; uploadMaxBytes: number },
): void {
  const { uploadMaxBytes } = deps;
  /** Runs `work` on the identifier's `/mnt/data`, with the session headers set. */
  async function withFiles<T>(
    request: FastifyRequest,
    reply: import('fastify').FastifyReply,
    work: (data: DataDirectory, query: Record<string, string | undefined>) => Promise<T>,
  ): Promise<T> {
    const receivedAt = performance.now();
    const { manager, query } = poolFor(deps.pools, request, 'sessions/execute');
    const identifier = requireIdentifier(query.identifier);
    const { value, session, allocation } = await manager.withSession(
      identifier,
      (s) => work(new DataDirectory(s.sandbox.dataDir, s.sandbox.dataOwner), query),
      { serialize: false },
    );
    sessionHeaders(reply, { session, allocation }, { receivedAt });
    return value;
  }

  app.get(`${POOL_ENDPOINT}/files`, (request, reply) =>
    withFiles(request, reply, async (data, query) => {
      const recursive = optionalBoolean(query.recursive, 'recursive') ?? false;
      return { value: (await data.list(query.path ?? '', recursive)).map(fileResource) };
    }),
  );

  app.post(`${POOL_ENDPOINT}/files`, (request, reply) =>
    withFiles(request, reply, async (data, query) => {
      if (!request.isMultipart()) {
        throw new AppError(
          ErrorCode.InvalidRequestContent,
          'Upload files as multipart/form-data with the field "file".',
        );
      }
      const part = await request.file();
      if (!part)
        throw new AppError(
          ErrorCode.InvalidRequestContent,
          'The multipart body holds no file; send it in the field "file".',
        );
      if (part.fieldname !== 'file') {
        part.file.resume();
        throw new AppError(
          ErrorCode.InvalidRequestContent,
          `Send the file in the multipart field "file", not "${part.fieldname}".`,
        );
      }
      if (!part.filename) throw new AppError(ErrorCode.InvalidFileName, 'The uploaded part has no filename.');
      const tooLarge = () =>
        new AppError(ErrorCode.PayloadTooLarge, `Uploads are limited to ${uploadMaxBytes} bytes per file.`);
      // Errors of the upload stream itself are the client's: too large, or cut off mid-body.
      let clientError: AppError | undefined;
      part.file.once('limit', () => {
        clientError = tooLarge();
        part.file.destroy(clientError);
      });
      part.file.once('error', (error) => {
        clientError ??= new AppError(
          ErrorCode.InvalidRequestContent,
          `The multipart body is malformed: ${error.message}`,
        );
      });
      let written;
      try {
        written = await data.write(query.path ?? '', part.filename, part.file);
      } catch (error) {
        throw clientError ?? error;
      }
      // A small body can be parsed, and cut at the limit, before the listener above is attached.
      if (part.file.truncated) {
        await data.remove(joinPath(query.path, part.filename));
        throw tooLarge();
      }
      return fileResource(written);
    }),
  );

  app.get(`${POOL_ENDPOINT}/files/:name`, (request, reply) =>
    withFiles(request, reply, async (data, query) => {
      const { name } = request.params as { name: string };
      return fileResource(await data.stat(joinPath(query.path, name)));
    }),
  );

  app.get(`${POOL_ENDPOINT}/files/:name/content`, async (request, reply) => {
    const { file, stream } = await withFiles(request, reply, (data, query) => {
      const { name } = request.params as { name: string };
      return data.open(joinPath(query.path, name));
    });
    return reply
      .header('content-type', file.contentType)
      .header('content-length', file.sizeInBytes)
      .header('content-disposition', `attachment; filename*=UTF-8''${encodeURIComponent(file.name)}`)
      .send(stream);
  });

  app.delete(`${POOL_ENDPOINT}/files/:name`, async (request, reply) => {
    await withFiles(request, reply, (data, query) => {
      const { name } = request.params as { name: string };
      return data.remove(joinPath(query.path, name));
    });
    return reply.status(204).send();
  });
}
