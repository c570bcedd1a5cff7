import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { privateIdentifier } from '../../pool/private-identifier.js';
import { requireIdentifier } from './pool-endpoint.js';

describe('requireIdentifier', () => {
  it('names no connection’s private session, however the owner is spelt', () => {
    for (const owner of ['mcp 3f1c', 'x', 'mcp-3f1c', '']) {
      assert.throws(
        () => requireIdentifier(privateIdentifier(owner)),
        /InvalidIdentifier|identifier must be/,
      );
    }
    assert.equal(requireIdentifier('mcp-3f1c'), 'mcp-3f1c');
  });
});
