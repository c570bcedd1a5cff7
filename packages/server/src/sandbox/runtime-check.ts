/**
 * @module sandbox/runtime-check
 * Readiness of the sandbox runtime: the code-interpreter image is in place and the OCI runtime runs.
 * Probes run at most every 30 s, so a load balancer polling /readyz costs no process per poll.
 */

import { access } from 'node:fs/promises';
import { join } from 'node:path';

import type { Config } from '../config.js';
import { runChecked, runCommand } from './command.js';

const RUNTIME_CHECK_INTERVAL_MS = 30_000;

export function runtimeCheck(config: Config): () => Promise<void> {
  let last: { at: number; result: Promise<void> } | undefined;
  const probe = async () => {
    const image = join(config.paths.pythonRootfs, 'etc/sandpool/image.json');
    await access(image).catch(() => {
      throw new Error(`no code-interpreter image at ${config.paths.pythonRootfs}: run scripts/setup.sh`);
    });
    await runChecked(runCommand, config.runtime, ['--version']).catch((error: unknown) => {
      throw new Error(`the OCI runtime ${config.runtime} does not run: ${(error as Error).message}`);
    });
  };
  return () => {
    if (!last || Date.now() - last.at > RUNTIME_CHECK_INTERVAL_MS) {
      last = { at: Date.now(), result: probe() };
      last.result.catch(() => undefined);
    }
    return last.result;
  };
}
