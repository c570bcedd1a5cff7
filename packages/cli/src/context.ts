/**
 * @module context
 * What every command gets: the process's I/O and environment (injected, so tests run the CLI in
 * process), the profiles, a client for the chosen profile, the output format and a spinner.
 */

import { readFileSync } from 'node:fs';

import { SandpoolClient } from '@sandpool/sdk';
import ora from 'ora';
import { Agent, fetch as undiciFetch } from 'undici';

import { UsageError } from './failure.js';
import { render, type Columns, type Format } from './output.js';
import { configDir, Profiles, type LookupEnv, type Profile } from './profiles.js';

export interface CliIo {
  env: LookupEnv;
  stdout: (data: string | Uint8Array) => void;
  /** Errors, hints and the spinner go here, never into output a script parses. */
  stderr: NodeJS.WritableStream & { isTTY?: boolean };
  /** How requests reach the server; the global fetch unless a test hands requests to a server in process. */
  fetch?: typeof fetch;
}

export interface GlobalOptions {
  output: Format;
  /** `--output` was given, not defaulted: reports meant for people print JSON only when asked. */
  outputChosen: boolean;
  profile?: string;
  subscription?: string;
}

/** A fetch that trusts the certificates in `caFile` (a self-signed server's, say) besides the system's. */
function fetchTrusting(caFile: string): typeof fetch {
  let ca: Buffer;
  try {
    ca = readFileSync(caFile);
  } catch (error) {
    throw new UsageError(`cannot read the CA file ${caFile}: ${(error as Error).message}`);
  }
  const dispatcher = new Agent({ connect: { ca } });
  return async (input, init) => {
    // undici's fetch takes its own Request class, not the global one: pass the parts.
    const request = new Request(input, init);
    const body = request.body ? await request.arrayBuffer() : undefined;
    const response = await undiciFetch(request.url, {
      method: request.method,
      headers: [...request.headers],
      ...(body && { body }),
      signal: request.signal,
      dispatcher,
    });
    // undici's Response is another class with the global one's shape, which is all the SDK reads.
    // eslint-disable-next-line @typescript-eslint/no-unsafe-class-instance-assignment
    return response;
  };
}

export function clientFor(profile: Profile, io: Pick<CliIo, 'fetch'>): SandpoolClient {
  const fetch = profile.caFile ? fetchTrusting(profile.caFile) : io.fetch;
  return new SandpoolClient({
    endpoint: profile.endpoint,
    credential: profile.apiKey,
    ...(profile.subscription && { subscription: profile.subscription }),
    ...(profile.resourceGroup && { resourceGroup: profile.resourceGroup }),
    ...(fetch && { fetch }),
  });
}

export class Context {
  readonly profiles: Profiles;

  constructor(
    readonly io: CliIo,
    readonly options: GlobalOptions,
  ) {
    this.profiles = new Profiles(configDir(io.env));
  }

  /** The signed-in profile, with `--subscription` and `-g` applied on top. */
  profile(resourceGroup?: string): Profile {
    const profile = this.profiles.resolve(this.options.profile, this.io.env);
    return {
      ...profile,
      ...(this.options.subscription && { subscription: this.options.subscription }),
      ...(resourceGroup && { resourceGroup }),
    };
  }

  client(resourceGroup?: string): SandpoolClient {
    return clientFor(this.profile(resourceGroup), this.io);
  }

  print<T extends object>(data: T | T[], columns?: Columns<T>): void {
    this.io.stdout(render(data, this.options.output, columns));
  }

  /**
   * Runs `work` under a spinner on stderr (shown only on a terminal); `work` may say what it is
   * doing now, which the spinner shows after `text`.
   */
  async spin<T>(text: string, work: (progress: (now: string) => void) => Promise<T>): Promise<T> {
    const terminal = this.io.stderr.isTTY === true;
    // Off a terminal ora would still print a line at start and stop; scripts get silence.
    const spinner = ora({ text, stream: this.io.stderr, isEnabled: terminal, isSilent: !terminal }).start();
    try {
      const result = await work((now) => (spinner.text = `${text}: ${now}`));
      spinner.succeed(text);
      return result;
    } catch (error) {
      spinner.fail();
      throw error;
    }
  }
}
