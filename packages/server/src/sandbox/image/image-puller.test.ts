import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { AppError } from '../../errors.js';
import { ImagePuller, parseImageReference, pullFailure } from './image-puller.js';

const DIGEST = `sha256:${'a'.repeat(64)}`;

describe('image references', () => {
  it('reads registry, repository, tag and digest', () => {
    assert.deepEqual(parseImageReference('127.0.0.1:5000/team/app:1.2'), {
      registry: '127.0.0.1:5000',
      repository: 'team/app',
      tag: '1.2',
      digest: undefined,
    });
    assert.deepEqual(parseImageReference(`registry.example.com/app@${DIGEST}`), {
      registry: 'registry.example.com',
      repository: 'app',
      tag: undefined,
      digest: DIGEST,
    });
    assert.deepEqual(parseImageReference('localhost/app'), {
      registry: 'localhost',
      repository: 'app',
      tag: 'latest',
      digest: undefined,
    });
    // Docker Hub's short names, as docker and Azure read them.
    assert.equal(parseImageReference('python:3.12-slim').repository, 'library/python');
    assert.equal(parseImageReference('python:3.12-slim').registry, 'docker.io');
  });

  for (const bad of [
    '',
    'UPPER/case',
    'app:',
    'app@sha256:123',
    'a b',
    'team//app',
    'a'.repeat(513),
    'app:tag/x',
  ]) {
    it(`refuses ${JSON.stringify(bad.slice(0, 20))}`, () => {
      assert.throws(
        () => parseImageReference(bad),
        (error: unknown) => error instanceof AppError && error.code === 'InvalidImageReference',
      );
    });
  }
});

describe('pull failures', () => {
  const cases: [string, string][] = [
    ['reading manifest 1 in r/app: manifest unknown: manifest unknown', 'ImageNotFound'],
    ['reading manifest 1 in r/app: unauthorized: authentication required', 'RegistryAuthFailed'],
    [
      'pinging container registry r: Get "http://r/v2/": dial tcp r: connect: connection refused',
      'RegistryUnreachable',
    ],
    [
      'choosing image instance: no image found in manifest list for architecture amd64',
      'ImagePlatformUnsupported',
    ],
    ['unsupported manifest media type application/x-custom', 'ImageManifestInvalid'],
    ['something else entirely', 'ImagePullFailed'],
  ];
  for (const [stderr, expected] of cases) {
    it(`reads "${stderr.slice(0, 40)}…" as ${expected}`, () => {
      const error = pullFailure('r/app:1', `time="x" level=fatal msg="${stderr}"\n`);
      assert.equal(error.code, expected);
      assert.match(error.message, /^cannot pull r\/app:1: [^()]+$/);
      // What the registry said is any server's words: logged through the cause, never reflected.
      assert.ok(!error.message.includes(stderr), error.message);
      assert.equal((error.cause as Error).message, stderr);
    });
  }
});

describe('registries on internal addresses', () => {
  const puller = (internalRegistries: string[], addresses: string[]) =>
    new ImagePuller({
      cacheDir: '/nonexistent/never-reached',
      insecureRegistries: [],
      internalRegistries,
      run: () => Promise.reject(new Error('no pull may start')),
      lookupAll: () => Promise.resolve(addresses),
    });
  const refused = (error: unknown) => error instanceof AppError && error.code === 'RegistryNotAllowed';

  for (const [registry, addresses] of [
    ['127.0.0.1:5000', []],
    ['localhost:5000', []],
    ['[::1]:5000', []],
    ['registry.corp.example', ['10.1.2.3']],
    ['metadata.example', ['169.254.169.254']],
    ['mixed.example', ['93.184.216.34', '192.168.1.9']],
    ['mapped.example', ['::ffff:127.0.0.1']],
  ] as const) {
    it(`refuses ${registry} (${addresses.join(', ') || 'literal'}) before connecting`, async () => {
      await assert.rejects(puller([], [...addresses]).pull(`${registry}/app:1`), refused);
    });
  }

  it('pulls from an internal registry the operator named', async () => {
    await assert.rejects(puller(['127.0.0.1:5000'], []).pull('127.0.0.1:5000/app:1'), (error: unknown) => {
      assert.ok(!refused(error), String(error));
      return true;
    });
  });
});
