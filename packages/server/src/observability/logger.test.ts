import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';

import { createLogger } from './logger.js';

describe('logger', () => {
  it('redacts credentials and secret values wherever a logged object carries them', () => {
    let out = '';
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        out += chunk.toString();
        done();
      },
    });
    const log = createLogger('info', sink);
    log.info(
      {
        req: { headers: { authorization: 'Bearer sp_abc_SECRET1' } },
        call: { authorization: 'Bearer SECRET2', apiKey: 'SECRET3', token: 'SECRET4' },
        secret: { name: 'db', value: 'SECRET5', password: 'SECRET6' },
        created: { key: 'sp_def_SECRET7', secret: 'SECRET8' },
        kept: { pool: 'visible' },
      },
      'test',
    );
    for (let i = 1; i <= 8; i++) assert.ok(!out.includes(`SECRET${i}`), `SECRET${i} leaked: ${out}`);
    assert.ok(out.includes('visible'));
    assert.ok(out.includes('[Redacted]'));
  });
});
