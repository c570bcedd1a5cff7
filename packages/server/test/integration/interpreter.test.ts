/** The Python interpreter agent in a real sandbox: state, values, output capture, images, timeouts. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { AppError, ErrorCode } from '../../src/errors.js';
import type { InterpreterInstance } from '../../src/pool/interpreter-instance.js';
import { skipReason, startPython, testDriver, value } from './harness.js';

describe('Python interpreter in a runc sandbox', { skip: skipReason }, () => {
  const driver = testDriver('interp');
  let session: InterpreterInstance;

  before(async () => {
    session = await startPython(driver, 'interp', { cpu: 1 });
  });
  after(async () => {
    await session.destroy();
  });

  it('keeps globals between executions and returns the last expression like a notebook', async () => {
    assert.equal(await value(session, 'x = 41\ndef inc(v):\n    return v + 1'), null);
    assert.equal(await value(session, 'inc(x)'), 42);
    assert.equal(await value(session, '"text"'), 'text');
    assert.equal(await value(session, '[1, 2]'), '[1, 2]');
    assert.equal(await value(session, 'float("nan")'), 'nan');
    assert.equal(await value(session, 'import numpy as np\nnp.int64(7) * 6'), 42);
  });

  it('shows a value the way a Jupyter kernel does, so clients that parse that text read it', async () => {
    // AutoGen lists packages with a list expression and splits the answer on ",\n".
    const listed = await value(session, '[f"package-{i}==1.{i}" for i in range(12)]');
    assert.equal(typeof listed, 'string');
    const items = (listed as string).slice(1, -1).split(',\n');
    assert.equal(items.length, 12, String(listed));
    assert.deepEqual(
      items.map((item) => item.trim()),
      Array.from({ length: 12 }, (_, i) => `'package-${String(i)}==1.${String(i)}'`),
    );
    assert.equal(await value(session, '{"a": 1, "b": [1, 2]}'), "{'a': 1, 'b': [1, 2]}");
    assert.equal(
      await value(session, '{f"key{i}": list(range(3)) for i in range(8)}'),
      `{${Array.from({ length: 8 }, (_, i) => `'key${String(i)}': [0, 1, 2]`).join(',\n ')}}`,
    );
    assert.equal(await value(session, '(1,)'), '(1,)');
    // pandas and NumPy objects keep their own text, as IPython shows them.
    const frame =
      'import pandas as pd\ndf = pd.DataFrame({"a": range(30), "b": [x * 0.5 for x in range(30)]})';
    await value(session, frame);
    assert.equal(await value(session, 'df'), await value(session, 'repr(df)'));
    assert.equal(await value(session, 'np.arange(40)'), await value(session, 'repr(np.arange(40))'));
  });

  it('runs in /mnt/data as an unprivileged user', async () => {
    assert.equal(await value(session, 'import os\nos.getcwd()'), '/mnt/data');
    assert.equal(await value(session, 'os.getuid()'), 1000);
  });

  it('captures stdout and stderr at the descriptor level, child processes included', async () => {
    const outcome = await session.execute({
      code: 'import os, subprocess, sys\nprint("py-out")\nprint("py-err", file=sys.stderr)\nos.system("echo sh-out; echo sh-err >&2")\nsubprocess.run(["echo", "sub-out"])',
      timeoutMs: 10_000,
      maxOutputChars: 4096,
    });
    assert.equal(outcome.status, 'succeeded');
    for (const text of ['py-out', 'sh-out', 'sub-out']) assert.match(outcome.stdout, new RegExp(text));
    for (const text of ['py-err', 'sh-err']) assert.match(outcome.stderr, new RegExp(text));
  });

  it('truncates each stream at maxOutputChars and says so', async () => {
    const outcome = await session.execute({
      code: 'print("x" * 10000)',
      timeoutMs: 10_000,
      maxOutputChars: 100,
    });
    assert.equal(outcome.stdout, 'x'.repeat(100));
    assert.equal(outcome.stdoutTruncated, true);
    assert.equal(outcome.stderrTruncated, false);
  });

  it('reports an exception with its traceback and keeps the session', async () => {
    const outcome = await session.execute({
      code: 'def f():\n    raise ValueError("bad")\nf()',
      timeoutMs: 10_000,
      maxOutputChars: 4096,
    });
    assert.equal(outcome.status, 'failed');
    const { error } = outcome;
    assert.ok(error);
    assert.equal(error.name, 'ValueError');
    assert.equal(error.message, 'bad');
    assert.match(error.traceback, /line 2, in f/);
    assert.doesNotMatch(error.traceback, /agent\.py/);
    assert.equal(await value(session, 'x'), 41);
  });

  it('reports a syntax error without running anything', async () => {
    const outcome = await session.execute({ code: 'x = 0\nif', timeoutMs: 10_000, maxOutputChars: 4096 });
    assert.equal(outcome.error?.name, 'SyntaxError');
    assert.equal(await value(session, 'x'), 41);
  });

  it('returns matplotlib figures as PNG images', async () => {
    const outcome = await session.execute({
      code: 'import matplotlib.pyplot as plt\nplt.plot([1, 3, 2])\nplt.title("t")',
      timeoutMs: 60_000,
      maxOutputChars: 4096,
    });
    assert.equal(outcome.status, 'succeeded', outcome.error?.traceback);
    assert.equal(outcome.images.length, 1);
    const png = Buffer.from(outcome.images[0]!.base64_data, 'base64');
    assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    assert.equal(outcome.result, null, 'the Text object of plt.title is shown as the picture, not its repr');
    const next = await session.execute({ code: '1', timeoutMs: 10_000, maxOutputChars: 10 });
    assert.equal(next.images.length, 0, 'figures are closed once returned');
  });

  it('shows a PIL image as the last expression as a PNG image', async () => {
    const outcome = await session.execute({
      code: 'from PIL import Image\nImage.new("RGB", (3, 2), "red")',
      timeoutMs: 60_000,
      maxOutputChars: 4096,
    });
    assert.equal(outcome.status, 'succeeded', outcome.error?.traceback);
    assert.equal(outcome.images.length, 1);
    const png = Buffer.from(outcome.images[0]!.base64_data, 'base64');
    assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    assert.equal(png.readUInt32BE(16), 3, 'the image is 3 pixels wide');
  });

  it('has the data-analysis packages a user expects', async () => {
    const versions = await value(
      session,
      'import importlib\n",".join(m for m in ["numpy","pandas","matplotlib","scipy","sklearn","requests","PIL","openpyxl"] if importlib.import_module(m))',
      120_000,
    );
    assert.equal(versions, 'numpy,pandas,matplotlib,scipy,sklearn,requests,PIL,openpyxl');
  });

  it('interrupts code that overruns its timeout and stays usable', async () => {
    const outcome = await session.execute({
      code: 'y = 1\nwhile True:\n    y += 1',
      timeoutMs: 300,
      maxOutputChars: 100,
    });
    assert.equal(outcome.timedOut, true);
    assert.equal(outcome.interrupted, true);
    assert.equal(outcome.error?.name, 'KeyboardInterrupt');
    assert.ok(((await value(session, 'y')) as number) > 1);
    assert.equal(await value(session, 'x'), 41);
  });

  it('interrupts a blocking sleep in C code', async () => {
    const outcome = await session.execute({
      code: 'import time\ntime.sleep(30)',
      timeoutMs: 200,
      maxOutputChars: 100,
    });
    assert.equal(outcome.interrupted, true);
    assert.equal(await value(session, '2 + 2'), 4);
  });

  it('kills a session whose code ignores the interrupt, and reports it lost', async () => {
    const victim = await startPython(driver, 'ignores');
    try {
      await value(victim, 'import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)');
      await assert.rejects(
        victim.execute({ code: 'while True: pass', timeoutMs: 200, maxOutputChars: 10 }),
        (e: unknown) =>
          e instanceof AppError && e.code === ErrorCode.SessionLost && e.details?.reason === 'killed',
      );
      await assert.rejects(
        victim.execute({ code: '1', timeoutMs: 1000, maxOutputChars: 10 }),
        (e: unknown) => e instanceof AppError && e.code === ErrorCode.SessionLost,
      );
    } finally {
      await victim.destroy();
    }
  });
});
