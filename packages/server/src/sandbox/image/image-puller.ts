/**
 * @module sandbox/image/image-puller
 * Pulls a custom container's image from an OCI/Docker registry into a local cache keyed by the
 * manifest digest, and unpacks it to a rootfs the sandboxes mount read-only. skopeo resolves and
 * copies (it speaks both registry APIs, manifest lists included, and runs offline against a
 * registry on loopback); umoci unpacks the OCI layout, whiteouts and all. A pull is resolved to a
 * digest first and then copied by that digest, so a tag moved meanwhile cannot mix two images; it
 * is unpacked beside the cache and renamed into place, so nothing half-pulled is ever used.
 * Credentials reach skopeo in a 0600 auth file, never on its command line.
 */

import { randomBytes } from 'node:crypto';
import { lookup } from 'node:dns/promises';
import { existsSync } from 'node:fs';
import { chmod, lstat, mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { dirname, join, resolve } from 'node:path';

import { AppError, ErrorCode } from '../../errors.js';
import type { CommandResult, CommandRunner } from '../command.js';
import { isInternalAddress } from '../network/internal-addresses.js';
import { PATHS } from '../oci/oci-spec.js';

/**
 * Where sandboxes mount over the image. A read-only rootfs cannot gain them later (the runtime runs
 * as an unprivileged user of its own namespace), so they are made once, at unpack.
 */
const MOUNT_POINTS = ['/proc', '/dev', PATHS.tmp, PATHS.home, PATHS.data, PATHS.agentSocketDir];

export interface RegistryCredentials {
  username: string;
  password: string;
}

/** A registry image reference, e.g. `127.0.0.1:5000/team/app:1.2` or `…/app@sha256:…`. */
export interface ImageReference {
  /** `host[:port]`; `docker.io` when the reference names none. */
  registry: string;
  repository: string;
  tag: string | undefined;
  digest: string | undefined;
}

/**
 * What the image's config says to run. Its user is not kept: every sandbox runs as the same
 * unprivileged user, whatever the image asks for.
 */
export interface ImageProcess {
  entrypoint: string[];
  cmd: string[];
  /** `NAME=value` entries. */
  env: string[];
  cwd: string;
}

export interface PulledImage {
  reference: string;
  /** The manifest digest the pool pins (`sha256:…`). */
  digest: string;
  /** The unpacked root filesystem, shared read-only by every sandbox of the image. */
  rootfs: string;
  process: ImageProcess;
}

export type PullStage = 'resolving' | 'downloading' | 'unpacking';

export interface ImagePullerOptions {
  /** Where images are cached: `<cacheDir>/<digest hex>/{rootfs,process.json}`. */
  cacheDir: string;
  /** Registries (`host:port`) reached over plain HTTP or with an unverified certificate. */
  insecureRegistries: readonly string[];
  /**
   * Registries (`host:port`) the operator allows on internal addresses (loopback, private,
   * link-local). Any other registry that resolves to one is refused: a pool's image must not make
   * the server connect into the host's own networks. Insecure registries are named by the operator
   * too and count as allowed.
   */
  internalRegistries: readonly string[];
  /** Every address a host name resolves to (injected for tests; node's resolver by default). */
  lookupAll?: (host: string) => Promise<string[]>;
  run: CommandRunner;
  /** Bounds each skopeo or umoci run. */
  timeoutMs?: number;
}

const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const DIGEST = /^sha256:[a-f0-9]{64}$/;
const HOST = /^(?:localhost|[a-zA-Z0-9.-]+\.[a-zA-Z0-9-]+|\[?[0-9a-fA-F:.]+\]?)(?::\d{1,5})?$/;

export function parseImageReference(text: string): ImageReference {
  const invalid = (why: string) =>
    new AppError(
      ErrorCode.InvalidImageReference,
      `image ${JSON.stringify(text)} is not a valid reference: ${why}`,
      {
        target: 'properties.customContainerTemplate.containers[0].image',
      },
    );
  if (text.length === 0 || text.length > 512) throw invalid('it must have 1 to 512 characters');
  let rest = text;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at !== -1) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST.test(digest)) throw invalid('a digest is sha256: and 64 hex digits');
  }
  const parts = rest.split('/');
  const first = parts[0] ?? '';
  const hasRegistry =
    parts.length > 1 && (first.includes('.') || first.includes(':') || first === 'localhost');
  const registry = hasRegistry ? first : 'docker.io';
  if (hasRegistry) parts.shift();
  if (!HOST.test(registry)) throw invalid(`${registry} is not a registry host`);
  let tag: string | undefined;
  const last = parts.at(-1) ?? '';
  const colon = last.lastIndexOf(':');
  if (colon !== -1) {
    tag = last.slice(colon + 1);
    parts[parts.length - 1] = last.slice(0, colon);
    if (!TAG.test(tag)) throw invalid(`tag ${JSON.stringify(tag)} has characters a tag cannot have`);
  }
  if (parts.length === 0 || !parts.every((p) => COMPONENT.test(p))) {
    throw invalid('the repository is lower-case letters, digits and separators, split by /');
  }
  if (registry === 'docker.io' && parts.length === 1) parts.unshift('library');
  return { registry, repository: parts.join('/'), tag: tag ?? (digest ? undefined : 'latest'), digest };
}

const formatReference = (ref: ImageReference, pinned?: string) =>
  `${ref.registry}/${ref.repository}${pinned ? `@${pinned}` : ref.digest ? `@${ref.digest}` : `:${ref.tag ?? 'latest'}`}`;

/**
 * The typed failure skopeo's message describes. The client gets the type and a sentence of ours:
 * what the far side said stays in the server's log (the error's cause), since a registry is any
 * server a Contributor names and its answer is not ours to reflect.
 */
export function pullFailure(reference: string, stderr: string): AppError {
  const message = (/msg="(.*)"\s*$/m.exec(stderr)?.[1] ?? stderr).replace(/\\"/g, '"').trim();
  const say = (code: ErrorCode, what: string) =>
    new AppError(code, `cannot pull ${reference}: ${what}`, {
      target: 'properties.customContainerTemplate.containers[0].image',
      cause: new Error(message),
    });
  if (/unauthorized|authentication required|denied|invalid username\/password/i.test(message)) {
    return say(ErrorCode.RegistryAuthFailed, 'the registry refused the credentials');
  }
  if (/manifest unknown|name unknown|not found|404/i.test(message)) {
    return say(ErrorCode.ImageNotFound, 'the registry has no such image');
  }
  if (
    /no image found in manifest list|does not match .*(architecture|os)|unsupported platform/i.test(message)
  ) {
    return say(ErrorCode.ImagePlatformUnsupported, 'the image has no linux/amd64 variant');
  }
  if (
    /connection refused|no such host|i\/o timeout|network is unreachable|dial tcp|x509|tls|HTTP response to HTTPS/i.test(
      message,
    )
  ) {
    return say(ErrorCode.RegistryUnreachable, 'the registry does not answer');
  }
  if (/manifest|unmarshal|invalid|unsupported|media ?type|parsing/i.test(message)) {
    return say(ErrorCode.ImageManifestInvalid, 'the registry’s answer is not a usable image');
  }
  return say(ErrorCode.ImagePullFailed, 'the pull failed');
}

export class ImagePuller {
  private readonly pulling = new Map<string, Promise<PulledImage>>();

  constructor(private readonly options: ImagePullerOptions) {}

  /**
   * The image at `reference`, pulled and unpacked unless its digest is cached already. `onStage`
   * hears each step of a pull that does work.
   */
  async pull(
    reference: string,
    credentials?: RegistryCredentials,
    onStage?: (stage: PullStage) => void,
  ): Promise<PulledImage> {
    const ref = parseImageReference(reference);
    await this.requireAllowedRegistry(ref.registry);
    // Sandboxes (users of their own) traverse the cache to their rootfs; the work area stays private.
    await mkdir(this.options.cacheDir, { recursive: true });
    await chmod(this.options.cacheDir, 0o711);
    await requireTraversable(this.options.cacheDir);
    await mkdir(join(this.options.cacheDir, 'tmp'), { recursive: true, mode: 0o700 });
    const authFile = credentials && (await this.writeAuthFile(ref.registry, credentials));
    try {
      onStage?.('resolving');
      const digest = ref.digest ?? (await this.resolveDigest(ref, authFile));
      const cached = await this.cached(reference, digest);
      if (cached) return cached;
      const inFlight = this.pulling.get(digest);
      if (inFlight) return await inFlight;
      const pull = this.fetchAndUnpack(ref, reference, digest, authFile, onStage).finally(() =>
        this.pulling.delete(digest),
      );
      this.pulling.set(digest, pull);
      return await pull;
    } finally {
      if (authFile) await rm(authFile, { force: true });
    }
  }

  /**
   * Refuses a registry on an internal address unless the operator named it. A name that does not
   * resolve is left to the pull, which fails as unreachable. (A name that resolves differently for
   * skopeo a moment later is the limit of this check; SECURITY.md says so.)
   */
  private async requireAllowedRegistry(registry: string): Promise<void> {
    const { insecureRegistries, internalRegistries } = this.options;
    if (internalRegistries.includes(registry) || insecureRegistries.includes(registry)) return;
    const host = registry.replace(/:\d+$/, '').replace(/^\[(.*)\]$/, '$1');
    const lookupAll =
      this.options.lookupAll ??
      (async (name: string) => (await lookup(name, { all: true })).map((found) => found.address));
    const addresses = isIP(host) ? [host] : await lookupAll(host).catch(() => [] as string[]);
    if (host === 'localhost' || addresses.some(isInternalAddress)) {
      throw new AppError(
        ErrorCode.RegistryNotAllowed,
        `registry ${registry} is on a loopback, private or link-local address, which this server does not pull from unless its operator allows the registry (the internalRegistries setting)`,
        { target: 'properties.customContainerTemplate.containers[0].image' },
      );
    }
  }

  /** Drops a cached image (its sandboxes must be gone). */
  async remove(digest: string): Promise<void> {
    await rm(this.imageDir(digest), { recursive: true, force: true });
  }

  private imageDir(digest: string): string {
    return join(this.options.cacheDir, digest.replace(/^sha256:/, ''));
  }

  private async cached(reference: string, digest: string): Promise<PulledImage | undefined> {
    const dir = this.imageDir(digest);
    if (!existsSync(join(dir, 'process.json'))) return undefined;
    const process = JSON.parse(await readFile(join(dir, 'process.json'), 'utf8')) as ImageProcess;
    return { reference, digest, rootfs: join(dir, 'rootfs'), process };
  }

  private tlsFlag(ref: ImageReference, flag: string): string[] {
    return this.options.insecureRegistries.includes(ref.registry) ? [`${flag}=false`] : [];
  }

  private async skopeo(reference: string, args: string[]): Promise<CommandResult> {
    const result = await this.options.run('skopeo', args, { timeoutMs: this.options.timeoutMs ?? 600_000 });
    if (result.code !== 0) throw pullFailure(reference, result.stderr || result.stdout);
    return result;
  }

  private async resolveDigest(ref: ImageReference, authFile: string | undefined): Promise<string> {
    const reference = formatReference(ref);
    const result = await this.skopeo(reference, [
      'inspect',
      ...this.tlsFlag(ref, '--tls-verify'),
      ...(authFile ? ['--authfile', authFile] : []),
      '--format',
      '{{.Digest}} {{.Os}}/{{.Architecture}}',
      `docker://${reference}`,
    ]);
    const [digest = '', platform = ''] = result.stdout.trim().split(' ');
    if (!DIGEST.test(digest))
      throw pullFailure(reference, `invalid digest ${JSON.stringify(digest)} in manifest`);
    if (platform !== 'linux/amd64') {
      throw new AppError(
        ErrorCode.ImagePlatformUnsupported,
        `cannot pull ${reference}: it is built for ${platform}, and this host runs linux/amd64`,
        { target: 'properties.customContainerTemplate.containers[0].image' },
      );
    }
    return digest;
  }

  private async fetchAndUnpack(
    ref: ImageReference,
    reference: string,
    digest: string,
    authFile: string | undefined,
    onStage: ((stage: PullStage) => void) | undefined,
  ): Promise<PulledImage> {
    const work = join(
      this.options.cacheDir,
      'tmp',
      `${digest.slice(7, 19)}-${randomBytes(4).toString('hex')}`,
    );
    const layout = `${work}/layout`;
    const bundle = `${work}/bundle`;
    try {
      await mkdir(work, { recursive: true, mode: 0o700 });
      onStage?.('downloading');
      await this.skopeo(reference, [
        'copy',
        '--quiet',
        ...this.tlsFlag(ref, '--src-tls-verify'),
        ...(authFile ? ['--src-authfile', authFile] : []),
        `docker://${formatReference(ref, digest)}`,
        `oci:${layout}:image`,
      ]);
      onStage?.('unpacking');
      const unpack = await this.options.run('umoci', ['unpack', '--image', `${layout}:image`, bundle], {
        timeoutMs: this.options.timeoutMs ?? 600_000,
      });
      if (unpack.code !== 0) throw pullFailure(reference, unpack.stderr);
      await makeMountPoints(reference, join(bundle, 'rootfs'));
      // no_new_privs already makes setuid/setgid bits inert; stripping them keeps them so under any runtime.
      const strip = await this.options.run('find', [
        join(bundle, 'rootfs'),
        ...['-xdev', '-type', 'f', '-perm', '/6000', '-exec', 'chmod', 'ug-s', '{}', '+'],
      ]);
      if (strip.code !== 0) throw pullFailure(reference, strip.stderr);
      const process = await readImageConfig(reference, layout);
      await writeFile(join(bundle, 'process.json'), JSON.stringify(process));
      // umoci makes the bundle 0700; sandboxes in their own user namespace must traverse it.
      await chmod(bundle, 0o711);
      await rm(layout, { recursive: true, force: true });
      const dir = this.imageDir(digest);
      // Another server process may have unpacked the same digest meanwhile: the same digest is the same image.
      if (!existsSync(dir)) await rename(bundle, dir);
      return { reference, digest, rootfs: join(dir, 'rootfs'), process };
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  }

  private async writeAuthFile(registry: string, credentials: RegistryCredentials): Promise<string> {
    const path = join(this.options.cacheDir, 'tmp', `auth-${randomBytes(8).toString('hex')}.json`);
    const auth = Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64');
    await writeFile(path, JSON.stringify({ auths: { [registry]: { auth } } }), { mode: 0o600 });
    return path;
  }
}

/**
 * Sandboxes run as users of their own, so every directory above the cache must let others through
 * (x for "other"); otherwise runc fails later with a bare "permission denied".
 */
async function requireTraversable(dir: string): Promise<void> {
  for (let path = resolve(dir); path !== dirname(path); path = dirname(path)) {
    const { mode } = await stat(path);
    if ((mode & 0o001) === 0) {
      throw new AppError(
        ErrorCode.SandboxRuntimeError,
        `the image cache ${dir} is below ${path}, which sandboxes cannot traverse: chmod o+x ${path}`,
      );
    }
  }
}

/** Creates each mount point, refusing an image whose path to one goes through a symlink (it could lead out). */
async function makeMountPoints(reference: string, rootfs: string): Promise<void> {
  // Egress-enabled sandboxes get their resolver bound over this file; a symlink there is left alone.
  const resolvConf = join(rootfs, 'etc', 'resolv.conf');
  if (!(await lstat(resolvConf).catch(() => undefined))) {
    await mkdir(join(rootfs, 'etc'), { recursive: true, mode: 0o755 });
    await writeFile(resolvConf, '', { mode: 0o644 });
  }
  for (const point of MOUNT_POINTS) {
    let path = rootfs;
    for (const part of point.split('/').filter(Boolean)) {
      path = join(path, part);
      const stat = await lstat(path).catch(() => undefined);
      if (!stat) await mkdir(path, { mode: 0o755 });
      else if (!stat.isDirectory()) {
        throw new AppError(
          ErrorCode.ImageManifestInvalid,
          `cannot use ${reference}: its ${point} is not a plain directory, and sandboxes mount there`,
          { target: 'properties.customContainerTemplate.containers[0].image' },
        );
      }
    }
  }
}

/** What the image's config says to run, read from the OCI layout skopeo wrote. */
async function readImageConfig(reference: string, layout: string): Promise<ImageProcess> {
  const blob = async (digest: unknown) => {
    if (typeof digest !== 'string' || !DIGEST.test(digest)) {
      throw pullFailure(reference, `invalid digest ${JSON.stringify(digest)} in manifest`);
    }
    return JSON.parse(await readFile(join(layout, 'blobs', 'sha256', digest.slice(7)), 'utf8')) as Record<
      string,
      unknown
    >;
  };
  const index = JSON.parse(await readFile(join(layout, 'index.json'), 'utf8')) as {
    manifests?: { digest?: string }[];
  };
  const manifest = (await blob(index.manifests?.[0]?.digest)) as { config?: { digest?: string } };
  const image = (await blob(manifest.config?.digest)) as {
    config?: {
      Entrypoint?: string[] | null;
      Cmd?: string[] | null;
      Env?: string[] | null;
      WorkingDir?: string;
    };
  };
  const config = image.config ?? {};
  return {
    entrypoint: config.Entrypoint ?? [],
    cmd: config.Cmd ?? [],
    env: config.Env ?? [],
    cwd: config.WorkingDir || '/',
  };
}
