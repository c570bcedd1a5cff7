import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
import { after, describe, it } from 'node:test';

import { AppError, ErrorCode } from '../errors.js';
import { DataDirectory, dataPathSegments } from './data-dir.js';

const isCode = (code: string) => (e: unknown) => e instanceof AppError && e.code === code;

describe('dataPathSegments', () => {
  it('accepts names below /mnt/data in either spelling', () => {
    assert.deepEqual(dataPathSegments('a/b.txt'), ['a', 'b.txt']);
    assert.deepEqual(dataPathSegments('/mnt/data/a/b.txt'), ['a', 'b.txt']);
    assert.deepEqual(dataPathSegments('/mnt/data'), []);
    assert.deepEqual(dataPathSegments(''), []);
    assert.deepEqual(dataPathSegments('/mnt/database'), ['mnt', 'database']);
  });

  for (const bad of ['..', 'a/../../etc', './x', 'a//b', 'x\0y', 'n'.repeat(256)]) {
    it(`refuses ${JSON.stringify(bad.slice(0, 20))}`, () =>
      assert.throws(() => dataPathSegments(bad), isCode(ErrorCode.InvalidFileName)));
  }
});

describe('DataDirectory', () => {
  const base = mkdtempSync('/var/tmp/sandpool-data-');
  after(() => rmSync(base, { recursive: true }));
  const outside = join(base, 'host-secret');
  writeFileSync(outside, 'host secret');
  mkdirSync(join(base, 'host-dir'));
  const root = join(base, 'data');
  mkdirSync(root);
  // What hostile code in the sandbox could leave behind.
  symlinkSync(outside, join(root, 'link-to-file'));
  symlinkSync(join(base, 'host-dir'), join(root, 'link-to-dir'));
  const owner = { uid: process.getuid!() + 1, gid: process.getgid!() + 1 };
  const data = new DataDirectory(root, owner);

  it('writes, lists, reads and deletes files, owned by the sandbox user', async () => {
    const written = await data.write('reports', 'q1.csv', Readable.from(['a,b\n1,2\n']));
    assert.equal(written.sizeInBytes, 8);
    assert.equal(written.contentType, 'text/csv');
    assert.equal(statSync(join(root, 'reports', 'q1.csv')).uid, owner.uid);
    assert.equal(statSync(join(root, 'reports')).uid, owner.uid);
    const listed = await data.list('', true);
    assert.ok(listed.some((f) => f.name === 'q1.csv' && f.directory === 'reports'));
    assert.ok(!listed.some((f) => f.name.startsWith('link-')), 'symlinks are not listed');
    const { stream, file } = await data.open('/mnt/data/reports/q1.csv');
    assert.equal(file.sizeInBytes, 8);
    assert.equal(await text(stream), 'a,b\n1,2\n');
    await data.remove('reports/q1.csv');
    await assert.rejects(data.stat('reports/q1.csv'), isCode(ErrorCode.FileNotFound));
  });

  it('never follows a symlink the sandbox planted', async () => {
    await assert.rejects(data.open('link-to-file'), (e: unknown) => e instanceof AppError);
    await assert.rejects(data.stat('link-to-file'), isCode(ErrorCode.FileNotFound));
    await assert.rejects(data.list('link-to-dir', false), isCode(ErrorCode.InvalidFileName));
    await assert.rejects(
      data.write('link-to-dir', 'planted.txt', Readable.from(['x'])),
      isCode(ErrorCode.InvalidFileName),
    );
    await assert.rejects(
      data.write('', 'link-to-file', Readable.from(['overwrite'])),
      isCode(ErrorCode.InvalidFileName),
    );
    assert.equal(readFileSync(outside, 'utf8'), 'host secret');
    await data.remove('link-to-file');
    assert.equal(readFileSync(outside, 'utf8'), 'host secret', 'deleting a link removes the link only');
  });

  it('removes a partial upload when the source fails', async () => {
    const failing = new Readable({
      read() {
        this.push('partial');
        this.destroy(new Error('client went away'));
      },
    });
    await assert.rejects(data.write('', 'broken.bin', failing), /client went away/);
    await assert.rejects(data.stat('broken.bin'), isCode(ErrorCode.FileNotFound));
  });
});
