import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';

import { renderOpenApiDocument } from './openapi-document.js';

const committed = new URL('../../../openapi.json', import.meta.url);

describe('openapi.json', () => {
  it('is what the routes generate (run `npm run gen` and commit the result)', async () => {
    assert.equal(readFileSync(committed, 'utf8'), await renderOpenApiDocument());
  });

  it('documents every operation with an id, a summary and its error body', async () => {
    const document = JSON.parse(await renderOpenApiDocument()) as {
      paths: Record<string, Record<string, { operationId?: string; summary?: string; responses: object }>>;
    };
    const operations = Object.entries(document.paths).flatMap(([path, methods]) =>
      Object.entries(methods).map(([method, operation]) => ({ at: `${method} ${path}`, ...operation })),
    );
    assert.ok(operations.length >= 25, `only ${operations.length} operations`);
    const ids = new Set<string>();
    for (const operation of operations) {
      assert.ok(operation.operationId, `${operation.at} has no operationId`);
      assert.ok(!ids.has(operation.operationId), `${operation.operationId} is used twice`);
      ids.add(operation.operationId);
      assert.ok(operation.summary, `${operation.at} has no summary`);
      if (!operation.at.endsWith('/healthz')) {
        assert.ok('4XX' in operation.responses, `${operation.at} does not document its errors`);
      }
    }
  });
});
