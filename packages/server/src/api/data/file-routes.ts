/**
 * @module api/data/file-routes
 * The session's files under `/mnt/data`, in every API generation: list (`path`, `recursive`),
 * upload (multipart field `file`, a bare name or `/mnt/data/<name>`), metadata, content and delete.
 * The current generation answers flat `SessionResourceFile`s; the legacy one (`files/upload`,
 * `files/content/{name}`, and `files` under a 2024 api-version) its `$id`/`properties` envelopes;
 * the pre-release one (`python/uploadFile`, `python/downloadFile`) the same. Each request reaches
 * (or allocates) the identifier's session, like Azure's do, and resets its cooldown; a name that does
 * not make a path is refused before.
 */

import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

import { AppError, ErrorCode } from '../../errors.js';
import type { PoolService } from '../../pool/pool-service.js';
import {
  dataPathSegments,
  onSessionFiles,
  type DataDirectory,
  type DataFile,
} from '../../pool/session-files.js';
import type { SessionSteps } from '../request-path.js';
import type { DataGeneration } from '../api-version.js';
import { optionalBoolean, type JsonRecord } from '../wire.js';
import { dataRoutes, legacyRoutes } from '../schemas/data.js';
import { POOL_ENDPOINT, poolFor, requireIdentifier, sessionHeaders, type Query } from './pool-endpoint.js';

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

/** The legacy generation's file list: `$id`-numbered envelopes around `properties`. */
function legacyFileList(files: DataFile[]): JsonRecord {
  let id = 1;
  return {
    $id: String(id++),
    value: files.map((file) => ({
      $id: String(id++),
      properties: {
        $id: String(id++),
        filename: file.directory === '' ? file.name : `${file.directory}/${file.name}`,
        size: file.sizeInBytes,
        lastModifiedTime: file.lastModifiedAt,
      },
    })),
  };
}

const joinPath = (directory: string | undefined, name: string) =>
  directory ? `${directory.replace(/\/+$/, '')}/${name}` : name;

interface FileContext {
  data: DataDirectory;
  query: Query;
  generation: DataGeneration;
}

export function registerFileRoutes(
  app: FastifyInstance,
  deps: { pools: PoolService; sessions: SessionSteps; uploadMaxBytes: number },
): void {
  const { uploadMaxBytes } = deps;

  /**
   * Runs `work` on the identifier's `/mnt/data`, with the session headers set, once `check` has
   * passed; undefined once the request went to the node that holds the session.
   */
  async function withFiles<T>(
    request: FastifyRequest,
    reply: FastifyReply,
    work: (context: FileContext) => Promise<T>,
    check: (query: Query) => void = () => undefined,
  ): Promise<{ value: T } | undefined> {
    const receivedAt = performance.now();
    const { manager, query, generation } = await poolFor(deps.pools, request);
    const identifier = requireIdentifier(query.identifier);
    check(query);
    const claimed = await deps.sessions.claim(request, reply, { manager, identifier });
    if (!claimed) return undefined;
    const value = await onSessionFiles(manager, claimed.session, (data) => work({ data, query, generation }));
    sessionHeaders(reply, claimed, { receivedAt });
    return { value };
  }

  /** Stores the request's multipart `file` part in `directory`; never leaves a partial file. */
  async function receiveUpload(
    request: FastifyRequest,
    data: DataDirectory,
    directory: string,
  ): Promise<DataFile> {
    if (!request.isMultipart()) {
      throw new AppError(
        ErrorCode.InvalidRequestContent,
        'Upload files as multipart/form-data with the field "file".',
      );
    }
    const part = await request.file().catch((error: unknown) => {
      // The parser throws plain errors for a body cut off or malformed before the first part.
      throw error instanceof AppError || (error as { statusCode?: number }).statusCode
        ? error
        : new AppError(
            ErrorCode.InvalidRequestContent,
            `The multipart body is malformed: ${(error as Error).message}`,
          );
    });
    if (!part) {
      throw new AppError(
        ErrorCode.InvalidRequestContent,
        'The multipart body holds no file; send it in the field "file".',
      );
    }
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
      written = await data.write(directory, part.filename, part.file);
    } catch (error) {
      throw clientError ?? error;
    }
    // A small body can be parsed, and cut at the limit, before the listener above is attached.
    if (part.file.truncated) {
      await data.remove(joinPath(directory, part.filename));
      throw tooLarge();
    }
    return written;
  }

  /** Answers with the raw bytes of the file at `pathOf(query)`; headers are set once it is open. */
  async function sendContent(
    request: FastifyRequest,
    reply: FastifyReply,
    pathOf: (query: Query) => string,
  ): Promise<FastifyReply> {
    // A bad name is refused before a session is allocated for it.
    const opened = await withFiles(
      request,
      reply,
      ({ data, query }) => data.open(pathOf(query)),
      (query) => dataPathSegments(pathOf(query)),
    );
    if (!opened) return reply;
    const { file, stream } = opened.value;
    return (
      reply
        .header('content-type', file.contentType)
        .header('content-length', file.sizeInBytes)
        .header('content-disposition', `attachment; filename*=UTF-8''${encodeURIComponent(file.name)}`)
        // A session's files are its code's output: a browser that opens one anyway (an .html, an .svg)
        // must neither sniff it into something else nor run it with this origin's rights.
        .header('x-content-type-options', 'nosniff')
        .header('content-security-policy', "default-src 'none'; sandbox")
        .send(stream)
    );
  }

  const nameParam = (request: FastifyRequest) => (request.params as { name: string }).name;

  app.get(`${POOL_ENDPOINT}/files`, dataRoutes.listFiles, async (request, reply) => {
    let recursive = false;
    const listed = await withFiles(
      request,
      reply,
      async ({ data, query, generation }) => {
        const files = await data.list(query.path ?? '', recursive);
        return generation === 'v1' ? legacyFileList(files) : { value: files.map(fileResource) };
      },
      (query) => {
        recursive = optionalBoolean(query.recursive, 'recursive') ?? false;
        dataPathSegments(query.path ?? '');
      },
    );
    return listed?.value ?? reply;
  });

  app.post(`${POOL_ENDPOINT}/files`, dataRoutes.upload, async (request, reply) => {
    const uploaded = await withFiles(
      request,
      reply,
      async ({ data, query, generation }) => {
        const file = await receiveUpload(request, data, query.path ?? '');
        return generation === 'v1' ? legacyFileList([file]) : fileResource(file);
      },
      (query) => dataPathSegments(query.path ?? ''),
    );
    return uploaded?.value ?? reply;
  });

  for (const [legacyUpload, doc] of [
    ['files/upload', legacyRoutes.upload],
    ['python/uploadFile', legacyRoutes.uploadFile],
  ] as const) {
    app.post(`${POOL_ENDPOINT}/${legacyUpload}`, doc, async (request, reply) => {
      const uploaded = await withFiles(
        request,
        reply,
        async ({ data, query }) => legacyFileList([await receiveUpload(request, data, query.path ?? '')]),
        (query) => dataPathSegments(query.path ?? ''),
      );
      return uploaded?.value ?? reply;
    });
  }

  app.get(`${POOL_ENDPOINT}/files/:name`, dataRoutes.getFile, async (request, reply) => {
    const found = await withFiles(
      request,
      reply,
      async ({ data, query, generation }) => {
        const file = await data.stat(joinPath(query.path, nameParam(request)));
        return generation === 'v1' ? legacyFileList([file]) : fileResource(file);
      },
      (query) => dataPathSegments(joinPath(query.path, nameParam(request))),
    );
    return found?.value ?? reply;
  });

  for (const [contentPath, doc] of [
    ['files/:name/content', dataRoutes.fileContent],
    ['files/content/:name', legacyRoutes.fileContent],
  ] as const) {
    app.get(`${POOL_ENDPOINT}/${contentPath}`, doc, (request, reply) =>
      sendContent(request, reply, (query) => joinPath(query.path, nameParam(request))),
    );
  }

  app.get(`${POOL_ENDPOINT}/python/downloadFile`, legacyRoutes.downloadFile, (request, reply) =>
    sendContent(request, reply, (query) => {
      if (!query.filename) {
        throw new AppError(
          ErrorCode.InvalidFileName,
          'The filename query parameter names the file to download.',
          {
            target: 'filename',
          },
        );
      }
      return query.filename;
    }),
  );

  app.delete(`${POOL_ENDPOINT}/files/:name`, dataRoutes.deleteFile, async (request, reply) => {
    const generation = await withFiles(
      request,
      reply,
      async ({ data, query, generation }) => {
        await data.remove(joinPath(query.path, nameParam(request)));
        return generation;
      },
      (query) => dataPathSegments(joinPath(query.path, nameParam(request))),
    );
    if (!generation) return reply;
    return generation.value === 'v1'
      ? reply.status(200).send({ message: 'file deleted successfully' })
      : reply.status(204).send();
  });
}
