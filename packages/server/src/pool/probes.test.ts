import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import type { SandboxDriver } from '../sandbox/driver.js';
import type { Probe } from './pool-spec.js';
import { runProbe } from './probes.js';

const liveness: Probe = {
  type: 'Liveness',
  check: { kind: 'httpGet', port: 8080, path: '/health', headers: [] },
  initialDelaySeconds: 0,
  periodSeconds: 1,
  timeoutSeconds: 1,
  failureThreshold: 3,
} as unknown as Probe;

describe('runProbe', () => {
  it('reports a sandbox torn down under a probe as a failed check, never a rejection', async () => {
    const gone = (what: string) => () => Promise.reject(new Error(`sandbox is gone (${what})`));
    const drivers = [
      { isListening: gone('isListening'), openPort: gone('openPort') },
      { isListening: () => Promise.resolve(true), openPort: gone('openPort') },
      { isListening: () => Promise.resolve(true), openPort: () => Promise.resolve('/nonexistent/port.sock') },
    ];
    for (const driver of drivers) {
      const result = await runProbe(driver as unknown as SandboxDriver, 'sbx', liveness);
      assert.equal(result.ok, false);
    }
  });
});
