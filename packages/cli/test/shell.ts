/**
 * A shell for CLI tests: its own config directory and environment, running `sandpool` in process
 * through main() with captured output, as a shell would see it. `fetch` carries its requests (the
 * global one, or an in-process server's).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { after } from 'node:test';

import { main } from '../src/main.js';

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
  json: any;
}

/** A shell with its own config directory and environment, running the CLI in process. */
export function shell(
  extraEnv: Record<string, string> = {},
  options: { terminal?: boolean; fetch?: typeof fetch } = {},
) {
  const configDir = mkdtempSync(join(tmpdir(), 'sandpool-cli-'));
  after(() => rmSync(configDir, { recursive: true, force: true }));
  const env: Record<string, string> = { SANDPOOL_CONFIG_DIR: configDir, ...extraEnv };
  const sandpool = async (...args: string[]): Promise<Run> => {
    const chunks: Buffer[] = [];
    // A terminal as ora sees one: a stream that says it is a TTY and can move its cursor.
    const stderr = Object.assign(
      new PassThrough(),
      options.terminal
        ? { isTTY: true, columns: 80, cursorTo: () => true, clearLine: () => true, moveCursor: () => true }
        : { isTTY: false },
    );
    let errors = '';
    stderr.on('data', (chunk: Buffer) => (errors += chunk.toString()));
    const code = await main(args, {
      env: (name) => env[name],
      stdout: (data) => chunks.push(Buffer.from(data)),
      stderr,
      ...(options.fetch && { fetch: options.fetch }),
    });
    const stdout = Buffer.concat(chunks).toString();
    let json: unknown;
    try {
      json = JSON.parse(stdout);
    } catch {
      json = undefined;
    }
    return { code, stdout, stderr: errors, json };
  };
  return { sandpool, env, configDir };
}
