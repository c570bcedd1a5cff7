import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, it } from 'node:test';

const sdk = fileURLToPath(new URL('..', import.meta.url));

describe('schema.gen.ts', () => {
  it('is what openapi-typescript makes of openapi.json (run `npm run gen` and commit the result)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sandpool-sdk-schema-'));
    try {
      const out = join(dir, 'schema.gen.ts');
      // The same command as `npm run gen`, written elsewhere.
      await promisify(execFile)(
        process.execPath,
        [join(sdk, 'node_modules/.bin/openapi-typescript'), '../../openapi.json', '-o', out],
        { cwd: sdk },
      );
      assert.equal(readFileSync(out, 'utf8'), readFileSync(join(sdk, 'src/schema.gen.ts'), 'utf8'));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
