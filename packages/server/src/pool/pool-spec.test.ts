import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { DEFAULT_PRELOAD, preloadModules, pythonPoolSpec, storedSpec, type PoolSpec } from './pool-spec.js';

describe('a pool’s preload list', () => {
  it('is the data stack by default where sandboxes are forked, and nothing where each starts its own interpreter', () => {
    assert.deepEqual(DEFAULT_PRELOAD, ['numpy', 'pandas']);
    assert.deepEqual(preloadModules(null, true), ['numpy', 'pandas']);
    assert.deepEqual(preloadModules(null, false), []);
  });

  it('is the pool’s own list wherever it names one, an empty one included', () => {
    assert.deepEqual(preloadModules(['scipy'], true), ['scipy']);
    assert.deepEqual(preloadModules(['scipy'], false), ['scipy']);
    assert.deepEqual(preloadModules([], true), []);
  });

  it('keeps a stored pool’s choice, and a pool stored before the list existed preloads nothing', () => {
    const before: Partial<PoolSpec> = pythonPoolSpec();
    delete before.preload;
    assert.deepEqual(storedSpec({ spec: before }).preload, []);
    assert.equal(storedSpec({ spec: JSON.parse(JSON.stringify(pythonPoolSpec())) }).preload, null);
    assert.deepEqual(storedSpec({ spec: pythonPoolSpec({ preload: ['numpy'] }) }).preload, ['numpy']);
  });
});
