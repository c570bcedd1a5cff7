/**
 * @module main
 * Composition root. Until the HTTP server lands, `sandpool` starts one PythonLTS sandbox, runs the
 * snippet given as arguments (or a default one) in it, prints the result as JSON and removes it.
 */

import { randomBytes } from 'node:crypto';

import { loadConfig } from './config.js';
import { DEFAULT_RESOURCES } from './sandbox/driver.js';
import { OciDriver } from './sandbox/oci/oci-driver.js';
import { InterpreterSandbox } from './pool/interpreter-sandbox.js';

const DEFAULT_SNIPPET = [
  'import sys, numpy as np',
  'print(f"Python {sys.version.split()[0]} in a Sandpool sandbox")',
  'np.arange(10).sum()',
].join('\n');

async function main(): Promise<void> {
  const config = loadConfig();
  const code = process.argv.slice(2).join(' ') || DEFAULT_SNIPPET;
  const driver = OciDriver.fromConfig(config);
  const started = performance.now();
  const session = await InterpreterSandbox.start(driver, {
    id: `run-${randomBytes(4).toString('hex')}`,
    runtime: config.runtime,
    image: { rootfs: config.paths.pythonRootfs, agentDir: config.paths.pythonAgentDir },
    resources: DEFAULT_RESOURCES,
    agent: { connectTimeoutMs: 10_000, interruptGraceMs: 2_000 },
  });
  const ready = performance.now();
  try {
    const outcome = await session.execute({ code, timeoutMs: 60_000, maxOutputChars: 4096 });
    const images = outcome.images.map((i) => ({
      ...i,
      base64_data: `<${i.base64_data.length} base64 chars>`,
    }));
    const report = { sandboxReadyMs: Math.round(ready - started), ...outcome, images };
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    process.exitCode = outcome.status === 'succeeded' ? 0 : 1;
  } finally {
    await session.destroy();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
