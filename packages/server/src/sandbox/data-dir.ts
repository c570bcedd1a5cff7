/**
 * @module sandbox/data-dir
 * The host's access to a sandbox's `/mnt/data`, for the files API. The directory belongs to the
 * sandbox, whose code may plant symlinks anywhere in it and swap them while the host works, so every
 * path is walked one component at a time from an open directory descriptor with O_NOFOLLOW: a
 * symlink is never followed, only reported as what it is. The directory is its own tmpfs, so a hard
 * link in it can only point at another file of the same sandbox.
 */

import { constants as fs, type Stats } from 'node:fs';
import { lstat, mkdir, open, opendir, unlink, type FileHandle } from 'node:fs/promises';
import { extname } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Readable } from 'node:stream';

import { AppError, ErrorCode } from '../errors.js';

export interface DataFile {
  name: string;
  type: 'file' | 'directory';
  sizeInBytes: number;
  lastModifiedAt: string;
  contentType: string;
  /** The directory holding it, relative to `/mnt/data` ('' for the top). */
  directory: string;
}

const MAX_NAME_BYTES = 255;
const MAX_DEPTH = 32;
const MAX_LISTED = 10_000;

const CONTENT_TYPES: Record<string, string> = {
  '.txt': 'text/plain',
  '.csv': 'text/csv',
  '.json': 'application/json',
  '.html': 'text/html',
  '.md': 'text/markdown',
  '.py': 'text/x-python',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.gif': 'image/gif',
  '.svg': 'image/svg+xml',
  '.pdf': 'application/pdf',
  '.zip': 'application/zip',
  '.xlsx': 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet',
};

function contentTypeOf(name: string): string {
  return CONTENT_TYPES[extname(name).toLowerCase()] ?? 'application/octet-stream';
}

/**
 * Splits a path relative to `/mnt/data` (a leading `/mnt/data/` is accepted) into its components,
 * refusing anything that could step outside: `..`, `.`, empty components, NUL, over-long names.
 */
export function dataPathSegments(path: string): string[] {
  const relative = path
    .replace(/^\/mnt\/data(?=\/|$)/, '')
    .replace(/^\/+/, '')
    .replace(/\/+$/, '');
  if (relative === '') return [];
  const segments = relative.split('/');
  for (const segment of segments) {
    if (segment === '' || segment === '.' || segment === '..' || segment.includes('\0')) {
      throw new AppError(
        ErrorCode.InvalidFileName,
        `invalid path ${JSON.stringify(path)}: use names below /mnt/data`,
      );
    }
    if (Buffer.byteLength(segment) > MAX_NAME_BYTES) {
      throw new AppError(
        ErrorCode.InvalidFileName,
        `a path component is longer than ${MAX_NAME_BYTES} bytes`,
      );
    }
  }
  if (segments.length > MAX_DEPTH) {
    throw new AppError(ErrorCode.InvalidFileName, `paths may be at most ${MAX_DEPTH} levels deep`);
  }
  return segments;
}

const at = (dir: FileHandle, name: string) => `/proc/self/fd/${dir.fd}/${name}`;

function notFound(path: string): AppError {
  return new AppError(
    ErrorCode.FileNotFound,
    `no file ${JSON.stringify(`/mnt/data/${path}`)} in the session`,
  );
}

function describe(name: string, stats: Stats, directory: string[]): DataFile {
  return {
    name,
    type: stats.isDirectory() ? 'directory' : 'file',
    sizeInBytes: stats.isDirectory() ? 0 : stats.size,
    lastModifiedAt: stats.mtime.toISOString(),
    contentType: stats.isDirectory() ? 'inode/directory' : contentTypeOf(name),
    directory: directory.join('/'),
  };
}

function notRegular(path: string): AppError {
  return new AppError(
    ErrorCode.NotARegularFile,
    `${JSON.stringify(`/mnt/data/${path.replace(/^\/mnt\/data\/?/, '')}`)} is a socket, FIFO or device; the files API reads and writes regular files only`,
  );
}

/** Throws NotARegularFile for a socket, FIFO or device (directories and links are the callers' to judge). */
function refuseSpecial(stats: Stats, path: string): void {
  if (stats.isSocket() || stats.isFIFO() || stats.isCharacterDevice() || stats.isBlockDevice()) {
    throw notRegular(path);
  }
}

export class DataDirectory {
  constructor(
    /** Host path of the sandbox's `/mnt/data` (a directory the host created). */
    private readonly root: string,
    /** Host ids of the sandbox's user, who owns what the host writes. */
    private readonly owner: { uid: number; gid: number },
  ) {}

  /** Opens the directory at `segments` without following symlinks; optionally creates what is missing. */
  private async openDirectory(segments: string[], create = false): Promise<FileHandle> {
    let dir = await open(this.root, fs.O_RDONLY | fs.O_DIRECTORY);
    try {
      for (const segment of segments) {
        let next: FileHandle;
        try {
          next = await open(at(dir, segment), fs.O_RDONLY | fs.O_DIRECTORY | fs.O_NOFOLLOW);
        } catch (error) {
          if (!create || (error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
          await mkdir(at(dir, segment), { mode: 0o700 });
          next = await open(at(dir, segment), fs.O_RDONLY | fs.O_DIRECTORY | fs.O_NOFOLLOW);
          await next.chown(this.owner.uid, this.owner.gid);
        }
        await dir.close();
        dir = next;
      }
      return dir;
    } catch (error) {
      await dir.close();
      throw this.translate(error, segments.join('/'));
    }
  }

  /** Maps the errors a hostile or full directory produces to the API's codes. */
  private translate(error: unknown, path: string): unknown {
    switch ((error as NodeJS.ErrnoException).code ?? '') {
      case 'ENOENT':
        return notFound(path);
      case 'ELOOP':
      case 'ENOTDIR':
        return new AppError(
          ErrorCode.InvalidFileName,
          `${JSON.stringify(`/mnt/data/${path}`)} is a symlink or not a directory; the files API does not follow links`,
        );
      // Opening a socket, or a FIFO nobody reads, for writing.
      case 'ENXIO':
      case 'EOPNOTSUPP':
        return notRegular(path);
      case 'ENOSPC':
      case 'EDQUOT':
        return new AppError(ErrorCode.SessionStorageFull, "the session's /mnt/data is full");
      default:
        return error;
    }
  }

  /**
   * The regular files and directories of a directory; with `recursive`, of everything below it
   * (symlinks and special files left out, not entered). Entries are read a batch at a time and the
   * walk stops at 10,000, so a directory of millions costs no more than the first 10,000.
   */
  async list(path: string, recursive: boolean): Promise<DataFile[]> {
    const segments = dataPathSegments(path);
    const files: DataFile[] = [];
    const walk = async (dirSegments: string[]): Promise<void> => {
      const dir = await this.openDirectory(dirSegments);
      const subdirectories: string[] = [];
      try {
        const entries = await opendir(`/proc/self/fd/${dir.fd}`, { bufferSize: 256 });
        for await (const entry of entries) {
          if (files.length >= MAX_LISTED) break;
          if (!entry.isFile() && !entry.isDirectory()) continue;
          const name = entry.name;
          const stats = await lstat(at(dir, name)).catch(() => undefined);
          if (!stats || !(stats.isFile() || stats.isDirectory())) continue;
          files.push(describe(name, stats, dirSegments));
          if (recursive && stats.isDirectory() && dirSegments.length < MAX_DEPTH) subdirectories.push(name);
        }
      } finally {
        await dir.close();
      }
      for (const name of subdirectories) await walk([...dirSegments, name]).catch(() => undefined);
    };
    await walk(segments);
    return files.sort((a, b) => `${a.directory}/${a.name}`.localeCompare(`${b.directory}/${b.name}`));
  }

  private async withParent<T>(
    path: string,
    work: (dir: FileHandle, name: string, directory: string[]) => Promise<T>,
  ): Promise<T> {
    const segments = dataPathSegments(path);
    const name = segments.pop();
    if (name === undefined) throw new AppError(ErrorCode.InvalidFileName, 'a file name is required');
    const dir = await this.openDirectory(segments);
    try {
      return await work(dir, name, segments);
    } catch (error) {
      throw this.translate(error, path.replace(/^\/mnt\/data\/?/, ''));
    } finally {
      await dir.close();
    }
  }

  async stat(path: string): Promise<DataFile> {
    return this.withParent(path, async (dir, name, directory) => {
      const stats = await lstat(at(dir, name));
      refuseSpecial(stats, path);
      if (!stats.isFile()) throw notFound(path);
      return describe(name, stats, directory);
    });
  }

  /**
   * Opens a regular file for reading; symlinks are not followed, and sockets, FIFOs and devices are
   * refused before they are opened (opening one can block, or reach whatever listens on it).
   */
  async open(path: string): Promise<{ file: DataFile; stream: Readable }> {
    return this.withParent(path, async (dir, name, directory) => {
      refuseSpecial(await lstat(at(dir, name)), path);
      const handle = await open(at(dir, name), fs.O_RDONLY | fs.O_NOFOLLOW | fs.O_NONBLOCK);
      try {
        const stats = await handle.stat();
        if (!stats.isFile()) throw notFound(path);
        return { file: describe(name, stats, directory), stream: handle.createReadStream() };
      } catch (error) {
        await handle.close();
        throw error;
      }
    });
  }

  /** Writes `source` to `directory/name`, creating missing directories, owned by the sandbox's user. */
  async write(directory: string, name: string, source: Readable): Promise<DataFile> {
    const [fileName, ...rest] = dataPathSegments(name).reverse();
    if (fileName === undefined) throw new AppError(ErrorCode.InvalidFileName, 'a file name is required');
    const segments = [...dataPathSegments(directory), ...rest.reverse()];
    const dir = await this.openDirectory(segments, true);
    try {
      const existing = await lstat(at(dir, fileName)).catch(() => undefined);
      if (existing) refuseSpecial(existing, [...segments, fileName].join('/'));
      const handle = await open(
        at(dir, fileName),
        fs.O_WRONLY | fs.O_CREAT | fs.O_TRUNC | fs.O_NOFOLLOW | fs.O_NONBLOCK,
        0o600,
      );
      try {
        try {
          // Planted between the look and the open: still not a file to write.
          if (!(await handle.stat()).isFile()) throw notRegular([...segments, fileName].join('/'));
          await handle.chown(this.owner.uid, this.owner.gid);
        } catch (error) {
          await handle.close();
          throw error;
        }
        // The stream closes the handle when it finishes or fails.
        await pipeline(source, handle.createWriteStream());
        return describe(fileName, await lstat(at(dir, fileName)), segments);
      } catch (error) {
        // A partial file is worse than none: the upload failed as a whole.
        await unlink(at(dir, fileName)).catch(() => undefined);
        throw error;
      }
    } catch (error) {
      throw this.translate(error, [...segments, fileName].join('/'));
    } finally {
      await dir.close();
    }
  }

  async remove(path: string): Promise<void> {
    await this.withParent(path, async (dir, name) => {
      const stats = await lstat(at(dir, name));
      if (stats.isDirectory()) throw new AppError(ErrorCode.InvalidFileName, `${name} is a directory`);
      await unlink(at(dir, name));
    });
  }
}
