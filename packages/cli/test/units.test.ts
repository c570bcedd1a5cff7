import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { splitFilename } from '../src/commands/arguments.js';
import { UsageError } from '../src/failure.js';
import { render } from '../src/output.js';
import { createBody, updatePatch } from '../src/pool-flags.js';

describe('sessionpool flags', () => {
  it('map onto the ARM body as az’s do', () => {
    const body = createBody('mypool', {
      containerType: 'shell',
      maxSessions: 20,
      readySessions: 2,
      cooldownPeriod: 600,
      networkStatus: 'egressdisabled',
      cpu: 0.5,
      memory: '1Gi',
      secrets: ['a=1', 'b=x=y'],
      tags: ['costCenter=edu'],
    });
    assert.equal(body.properties.containerType, 'Shell');
    assert.deepEqual(body.properties.scaleConfiguration, {
      maxConcurrentSessions: 20,
      readySessionInstances: 2,
    });
    assert.deepEqual(body.properties.dynamicPoolConfiguration, {
      lifecycleConfiguration: { lifecycleType: 'Timed', cooldownPeriodInSeconds: 600 },
    });
    assert.deepEqual(body.properties.sessionNetworkConfiguration, { status: 'EgressDisabled' });
    assert.deepEqual(body.properties.sessionResources, { cpu: 0.5, memory: '1Gi' });
    assert.deepEqual(body.properties.secrets, [
      { name: 'a', value: '1' },
      { name: 'b', value: 'x=y' },
    ]);
    assert.deepEqual(body.tags, { costCenter: 'edu' });
  });

  it('build a custom-container template with registry credentials kept as a secret', () => {
    const body = createBody('web', {
      containerType: 'CustomContainer',
      image: 'registry.local/app:1',
      targetPort: 8080,
      envVars: ['MODE=prod', 'TOKEN=secretref:api-token'],
      command: ['node'],
      args: ['server.js'],
      cpu: 1,
      memory: '2Gi',
      registryServer: 'registry.local',
      registryUsername: 'bot',
      registryPassword: 'pw',
      lifecycleType: 'OnContainerExit',
      maxAlivePeriod: 900,
    });
    const properties = body.properties as Record<string, any>;
    assert.deepEqual(properties.customContainerTemplate, {
      containers: [
        {
          name: 'web',
          image: 'registry.local/app:1',
          command: ['node'],
          args: ['server.js'],
          env: [
            { name: 'MODE', value: 'prod' },
            { name: 'TOKEN', secretRef: 'api-token' },
          ],
          resources: { cpu: 1, memory: '2Gi' },
        },
      ],
      ingress: { targetPort: 8080 },
      registryCredentials: {
        server: 'registry.local',
        username: 'bot',
        passwordSecretRef: 'registry-password',
      },
    });
    assert.deepEqual(properties.secrets, [{ name: 'registry-password', value: 'pw' }]);
    assert.equal(properties.sessionResources, undefined, 'custom containers size the container instead');
    assert.deepEqual(properties.dynamicPoolConfiguration, {
      lifecycleConfiguration: { lifecycleType: 'OnContainerExit', maxAlivePeriodInSeconds: 900 },
    });
  });

  it('refuse contradictions before anything is sent', () => {
    const cases: [string, () => unknown][] = [
      [
        'cooldown with OnContainerExit',
        () => createBody('p', { lifecycleType: 'OnContainerExit', cooldownPeriod: 5 }),
      ],
      ['max alive with Timed', () => createBody('p', { maxAlivePeriod: 5 })],
      ['an image on a PythonLTS pool', () => createBody('p', { image: 'x' })],
      [
        'a custom container without a port',
        () => createBody('p', { containerType: 'CustomContainer', image: 'x' }),
      ],
      [
        'a custom container without an image',
        () => createBody('p', { containerType: 'CustomContainer', targetPort: 1 }),
      ],
      ['an unknown container type', () => createBody('p', { containerType: 'Cobol' })],
      ['a secret without a value', () => createBody('p', { secrets: ['lonely'] })],
      ['an update with nothing in it', () => updatePatch({})],
      ['an update of the container type', () => updatePatch({ containerType: 'Shell' })],
    ];
    for (const [what, run] of cases) assert.throws(run, UsageError, what);
  });

  it('rebuild a custom container’s template on update, since a merge patch replaces arrays whole', () => {
    const body = createBody('web', {
      containerType: 'CustomContainer',
      image: 'registry.local/app:1',
      targetPort: 8080,
      envVars: ['MODE=prod'],
      registryServer: 'registry.local',
      registryUsername: 'bot',
      registryPassword: 'pw',
    });
    const current = { ...body, name: 'web' };
    const patch = updatePatch({ image: 'registry.local/app:2', memory: '1Gi' }, current) as any;
    assert.deepEqual(patch.properties.customContainerTemplate, {
      containers: [
        {
          name: 'web',
          image: 'registry.local/app:2',
          env: [{ name: 'MODE', value: 'prod' }],
          resources: { cpu: 0.25, memory: '1Gi' },
        },
      ],
      ingress: { targetPort: 8080 },
      registryCredentials: {
        server: 'registry.local',
        username: 'bot',
        passwordSecretRef: 'registry-password',
      },
    });
    assert.equal(patch.properties.sessionResources, undefined);
    assert.throws(() => updatePatch({ image: 'x' }), UsageError, 'an image for a pool that has no template');
  });

  it('update only what the flags name', () => {
    assert.deepEqual(updatePatch({ maxSessions: 8, cpu: 1 }), {
      properties: { scaleConfiguration: { maxConcurrentSessions: 8 }, sessionResources: { cpu: 1 } },
    });
    assert.deepEqual(updatePatch({ tags: ['team=a'] }), { tags: { team: 'a' } });
    assert.deepEqual(updatePatch({ preloadModules: ['numpy', 'pandas'] }), {
      properties: { preloadModules: ['numpy', 'pandas'] },
    });
  });

  it('carry a PythonLTS pool’s preload list', () => {
    const body = createBody('ds', { preloadModules: ['numpy', 'matplotlib.pyplot'] });
    assert.deepEqual(body.properties.preloadModules, ['numpy', 'matplotlib.pyplot']);
    assert.equal(createBody('plain', {}).properties.preloadModules, undefined);
  });
});

describe('output', () => {
  const rows = [
    { name: 'alpha', size: 3, nested: { a: 1 } },
    { name: 'b', size: 12345, nested: { b: 2 } },
  ];

  it('prints JSON whole', () => {
    assert.deepEqual(JSON.parse(render(rows, 'json')), rows);
  });

  it('prints a table of the scalar fields under a dashed header', () => {
    assert.equal(render(rows, 'table'), 'name   size\n-----  -----\nalpha  3\nb      12345\n');
  });

  it('prints chosen columns as tab-separated values without a header, tabs and newlines flattened', () => {
    const text = render([{ out: 'a\tb\nc', n: 1 }], 'tsv', [
      ['Out', (r) => r.out],
      ['N', (r) => r.n],
    ]);
    assert.equal(text, 'a b c\t1\n');
  });
});

describe('csv output', () => {
  it('has a header row and quotes what needs quoting (RFC 4180)', () => {
    const text = render([{ a: 'plain', b: 'has,comma', c: 'say "hi"' }], 'csv');
    assert.equal(text, 'a,b,c\r\nplain,"has,comma","say ""hi"""\r\n');
  });
});

describe('file names', () => {
  it('split dir/name into path and name, as az does', () => {
    assert.deepEqual(splitFilename('out/plot.png', undefined), { name: 'plot.png', path: 'out' });
    assert.deepEqual(splitFilename('/mnt/data/plot.png', undefined), { name: 'plot.png' });
    assert.deepEqual(splitFilename('plot.png', 'out'), { name: 'plot.png', path: 'out' });
    assert.deepEqual(splitFilename('a/b.txt', 'x'), { name: 'b.txt', path: 'x/a' });
  });
});
