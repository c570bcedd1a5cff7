/** The PythonLTS image as built: nothing of the build host rides along into every sandbox. */

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';

import { image } from './harness.js';

describe('the PythonLTS image', () => {
  const etc = join(image.rootfs, 'etc');

  it('carries neutral host files, not the build host’s', () => {
    assert.equal(readFileSync(join(etc, 'hostname'), 'utf8').trim(), 'sandbox');
    assert.equal(readFileSync(join(etc, 'resolv.conf'), 'utf8'), '');
    for (const file of ['hostname', 'hosts', 'resolv.conf']) {
      assert.ok(!readFileSync(join(etc, file), 'utf8').includes(hostname()), `${file} names the build host`);
    }
  });
});
