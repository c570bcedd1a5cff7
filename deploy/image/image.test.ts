/**
 * Builds Sandpool's own image with deploy/image/build.sh (mmdebstrap and umoci; no registry pull),
 * checks its OCI configuration, then runs it with runc from an unpacked bundle: its Node, its CLI
 * and the server's settings listing (which loads the whole compiled server) all start.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';

import { skipReason } from '../../packages/server/test/integration/harness.js';

const run = promisify(execFile);
const BUILD = fileURLToPath(new URL('./build.sh', import.meta.url));
const VERSION = (
  JSON.parse(readFileSync(new URL('../../packages/server/package.json', import.meta.url), 'utf8')) as {
    version: string;
  }
).version;

interface ImageConfig {
  config: {
    Entrypoint: string[];
    Cmd: string[];
    Env: string[];
    WorkingDir: string;
    Labels: Record<string, string>;
  };
}

describe('the Sandpool image', { skip: skipReason }, () => {
  const dir = mkdtempSync('/var/tmp/sandpool-image-test-');
  const layout = `${dir}/out/sandpool`;
  const bundle = `${dir}/bundle`;
  let runs = 0;

  before(async () => {
    await run('bash', [BUILD, `${dir}/out`], { timeout: 20 * 60_000, maxBuffer: 64 * 1024 * 1024 });
    await run('umoci', ['unpack', '--image', `${layout}:${VERSION}`, bundle]);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  /** The image's blob a digest names, parsed. */
  const blob = (digest: string): unknown =>
    JSON.parse(readFileSync(`${layout}/blobs/${digest.replace(':', '/')}`, 'utf8'));

  /** Runs `args` in a container of the image (runc, from the unpacked bundle); its stdout. */
  async function inImage(args: string[]): Promise<string> {
    runs++;
    const specPath = `${bundle}/config.json`;
    const spec = JSON.parse(readFileSync(specPath, 'utf8')) as {
      process: { args: string[]; terminal: boolean };
    };
    spec.process.args = args;
    spec.process.terminal = false;
    writeFileSync(specPath, JSON.stringify(spec));
    const { stdout } = await run(
      'runc',
      [
        '--root',
        `${dir}/runc`,
        'run',
        '--bundle',
        bundle,
        `sandpool-image-test-${String(process.pid)}-${String(runs)}`,
      ],
      { timeout: 120_000 },
    );
    return stdout;
  }

  it('is an OCI layout tagged with the server’s version, whose entrypoint runs the server', () => {
    const top = JSON.parse(readFileSync(`${layout}/index.json`, 'utf8')) as {
      manifests: { digest: string; annotations?: Record<string, string> }[];
    };
    const tagged = top.manifests.find(
      (m) => m.annotations?.['org.opencontainers.image.ref.name'] === VERSION,
    );
    assert.ok(tagged, `a manifest tagged ${VERSION}`);
    const manifest = blob(tagged.digest) as { config: { digest: string }; layers: unknown[] };
    assert.ok(manifest.layers.length > 0);
    const { config } = blob(manifest.config.digest) as ImageConfig;
    assert.deepEqual(config.Entrypoint, ['/opt/sandpool/app/deploy/image/entrypoint.sh']);
    assert.deepEqual(config.Cmd, ['serve']);
    assert.equal(config.WorkingDir, '/opt/sandpool/app');
    assert.ok(config.Env.some((entry) => entry.startsWith('PATH=/opt/sandpool/node/bin:')));
    assert.equal(config.Labels['org.opencontainers.image.version'], VERSION);
  });

  it('runs Node 24, the sandpool CLI the preStop drain calls, and the server', async () => {
    assert.match(await inImage(['/opt/sandpool/node/bin/node', '--version']), /^v24\./);
    assert.match(await inImage(['/usr/local/bin/sandpool', '--help']), /sessionpool/);
    const settings = await inImage([
      '/opt/sandpool/node/bin/node',
      '/opt/sandpool/app/packages/server/dist/src/main.js',
      '--help',
    ]);
    assert.match(settings, /--node-url/);
    const tools = ['runc', 'conmon', 'runsc', 'skopeo', 'umoci', 'socat', 'nft', 'mmdebstrap'];
    const found = await inImage([
      '/bin/sh',
      '-c',
      `for tool in ${tools.join(' ')}; do command -v $tool; done`,
    ]);
    assert.deepEqual(
      found
        .trim()
        .split('\n')
        .map((path) => path.split('/').at(-1)),
      tools,
      'every host tool the server drives',
    );
  });
});
