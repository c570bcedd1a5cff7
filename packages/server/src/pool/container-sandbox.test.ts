import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { containerCommand } from './container-sandbox.js';
import type { ContainerTemplate } from './pool-spec.js';

const image = { entrypoint: ['/entry'], cmd: ['--serve'], env: [], cwd: '/' };
const template = (command: string[], args: string[]): ContainerTemplate => ({
  name: 'app',
  image: 'registry.example/app:1',
  imageDigest: null,
  command,
  args,
  env: [],
  targetPort: 8080,
  probes: [],
  registry: null,
});

describe('containerCommand', () => {
  it('follows Kubernetes: command replaces the entrypoint, args the image’s cmd', () => {
    assert.deepEqual(containerCommand(image, template([], [])), ['/entry', '--serve']);
    assert.deepEqual(containerCommand(image, template([], ['--debug'])), ['/entry', '--debug']);
    assert.deepEqual(containerCommand(image, template(['/other'], [])), ['/other']);
    assert.deepEqual(containerCommand(image, template(['/other'], ['-x'])), ['/other', '-x']);
    assert.deepEqual(containerCommand({ ...image, entrypoint: [] }, template([], [])), ['--serve']);
  });
});
