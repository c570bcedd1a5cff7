import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { poolDefinition } from '../src/pool-definition.js';

describe('pool definition', () => {
  it('spells plain options as the ARM body', () => {
    assert.deepEqual(
      poolDefinition({
        containerType: 'Shell',
        maxSessions: 20,
        readySessions: 3,
        cooldownSeconds: 60,
        cpu: 0.5,
        memory: '1Gi',
        secrets: { token: 's3cret' },
        tags: { costCenter: 'edu' },
      }),
      {
        location: 'local',
        tags: { costCenter: 'edu' },
        properties: {
          containerType: 'Shell',
          poolManagementType: 'Dynamic',
          scaleConfiguration: { maxConcurrentSessions: 20, readySessionInstances: 3 },
          dynamicPoolConfiguration: {
            lifecycleConfiguration: { lifecycleType: 'Timed', cooldownPeriodInSeconds: 60 },
          },
          sessionNetworkConfiguration: { status: 'EgressDisabled' },
          sessionResources: { cpu: 0.5, memory: '1Gi' },
          secrets: [{ name: 'token', value: 's3cret' }],
        },
      },
    );
  });

  it('leaves ready sessions and resources to the server when not given', () => {
    const { properties } = poolDefinition();
    assert.deepEqual(properties.scaleConfiguration, { maxConcurrentSessions: 10 });
    assert.equal(properties.sessionResources, undefined);
    assert.equal(properties.containerType, 'PythonLTS');
  });

  it('takes maxAlivePeriod for OnContainerExit', () => {
    assert.deepEqual(
      poolDefinition({ lifecycle: 'OnContainerExit', maxAliveSeconds: 600 }).properties
        .dynamicPoolConfiguration,
      { lifecycleConfiguration: { lifecycleType: 'OnContainerExit', maxAlivePeriodInSeconds: 600 } },
    );
  });
});
