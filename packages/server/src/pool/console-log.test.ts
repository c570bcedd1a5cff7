import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, utimesSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';

import { ConsoleLogArchive, parseConsoleLog, readConsoleTail } from './console-log.js';

describe('console logs', () => {
  it('parses CRI log lines and joins partial entries', () => {
    const text = [
      '2026-11-26T18:00:00.000000001+00:00 stdout F hello world',
      '2026-11-26T18:00:01.000000000+00:00 stderr P part one, ',
      '2026-11-26T18:00:01.500000000+00:00 stderr F part two',
      '2026-11-26T18:00:02.000000000+00:00 stdout F ',
      'garbage without fields',
      '',
    ].join('\n');
    assert.deepEqual(parseConsoleLog(text), [
      { time: '2026-11-26T18:00:00.000000001+00:00', stream: 'stdout', text: 'hello world' },
      { time: '2026-11-26T18:00:01.500000000+00:00', stream: 'stderr', text: 'part one, part two' },
      { time: '2026-11-26T18:00:02.000000000+00:00', stream: 'stdout', text: '' },
    ]);
  });

  it('reads the last lines of a log, none of a missing one, and prunes old archives', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sandpool-console-'));
    try {
      const path = join(dir, 'live.log');
      writeFileSync(
        path,
        Array.from({ length: 50 }, (_, i) => `2026-11-26T18:00:00Z stdout F line ${i}`).join('\n') + '\n',
      );
      const tail = await readConsoleTail(path, 3);
      assert.deepEqual(
        tail.map((l) => l.text),
        ['line 47', 'line 48', 'line 49'],
      );
      assert.deepEqual(await readConsoleTail(join(dir, 'absent.log'), 3), []);

      const archive = new ConsoleLogArchive(join(dir, 'archive'));
      await archive.keep('old', path);
      await archive.keep('new', path);
      await archive.keep('never-logged', join(dir, 'absent.log'));
      const past = new Date(Date.now() - 3_600_000);
      utimesSync(archive.pathOf('old'), past, past);
      await archive.prune(Date.now() - 60_000);
      assert.ok(!existsSync(archive.pathOf('old')));
      assert.ok(existsSync(archive.pathOf('new')));
      assert.ok(!existsSync(archive.pathOf('never-logged')));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
