import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { classifyExit } from './oci-driver.js';

describe('classifyExit', () => {
  const cases: [exitCode: number, oomKills: number, expected: ReturnType<typeof classifyExit>][] = [
    [0, 0, 'exited'],
    [137, 0, 'killed'],
    [137, 1, 'oom'],
    [1, 2, 'oom'],
    [139, 0, 'crashed'],
    [134, 0, 'crashed'],
    [1, 0, 'crashed'],
  ];
  for (const [exitCode, oomKills, expected] of cases) {
    it(`exit ${exitCode} with ${oomKills} OOM kills is ${expected}`, () => {
      assert.equal(classifyExit(exitCode, oomKills), expected);
    });
  }
});
