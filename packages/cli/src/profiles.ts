/**
 * @module profiles
 * Where the CLI keeps endpoints and credentials, like `az login` does: named profiles in
 * `<config dir>/profiles.json` (mode 0600), one of them current. The environment overrides the
 * profile (`SANDPOOL_ENDPOINT`, `SANDPOOL_API_KEY`), so CI needs no file at all.
 */

import { chmodSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

import { UsageError } from './failure.js';

export interface Profile {
  endpoint: string;
  /** An API key or token. */
  apiKey: string;
  subscription?: string;
  resourceGroup?: string;
  /** A PEM file of the CA (or the self-signed certificate) the server's certificate chains to. */
  caFile?: string;
}

export interface ProfileFile {
  current: string | undefined;
  profiles: Record<string, Profile>;
}

export type LookupEnv = (name: string) => string | undefined;

/** `SANDPOOL_CONFIG_DIR`, else `$XDG_CONFIG_HOME/sandpool`, else `~/.config/sandpool`. */
export function configDir(env: LookupEnv): string {
  return (
    env('SANDPOOL_CONFIG_DIR') ??
    join(env('XDG_CONFIG_HOME') ?? join(env('HOME') ?? homedir(), '.config'), 'sandpool')
  );
}

export class Profiles {
  private readonly path: string;

  constructor(private readonly dir: string) {
    this.path = join(dir, 'profiles.json');
  }

  read(): ProfileFile {
    let text: string;
    try {
      text = readFileSync(this.path, 'utf8');
    } catch {
      return { current: undefined, profiles: {} };
    }
    try {
      return JSON.parse(text) as ProfileFile;
    } catch {
      throw new UsageError(`${this.path} is not valid JSON; fix it or remove it and log in again`);
    }
  }

  /** Writes atomically, readable by the owner alone: the file holds credentials. */
  write(file: ProfileFile): void {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    const temporary = `${this.path}.${process.pid}.tmp`;
    writeFileSync(temporary, `${JSON.stringify(file, null, 2)}\n`, { mode: 0o600 });
    chmodSync(temporary, 0o600);
    renameSync(temporary, this.path);
  }

  save(name: string, profile: Profile, makeCurrent: boolean): void {
    const file = this.read();
    file.profiles[name] = profile;
    if (makeCurrent || file.current === undefined) file.current = name;
    this.write(file);
  }

  remove(name: string): boolean {
    const file = this.read();
    if (!(name in file.profiles)) return false;
    const rest = Object.fromEntries(Object.entries(file.profiles).filter(([key]) => key !== name));
    file.profiles = rest;
    if (file.current === name) file.current = Object.keys(rest)[0];
    this.write(file);
    return true;
  }

  use(name: string): void {
    const file = this.read();
    if (!(name in file.profiles)) {
      throw new UsageError(`no profile "${name}"; known: ${Object.keys(file.profiles).join(', ') || 'none'}`);
    }
    file.current = name;
    this.write(file);
  }

  /**
   * The profile to use: `name`, else the current one, with the environment's endpoint and key on top.
   * Fails with a hint to log in when nothing names an endpoint and a credential.
   */
  resolve(name: string | undefined, env: LookupEnv): Profile & { name: string | undefined } {
    const file = this.read();
    const chosen = name ?? file.current;
    if (name !== undefined && !(name in file.profiles)) throw new UsageError(`no profile "${name}"`);
    const stored = chosen === undefined ? undefined : file.profiles[chosen];
    const endpoint = env('SANDPOOL_ENDPOINT') ?? stored?.endpoint;
    const apiKey = env('SANDPOOL_API_KEY') ?? stored?.apiKey;
    if (!endpoint || !apiKey) {
      throw new UsageError(
        'not signed in: run `sandpool login --endpoint <url> --api-key <key>` (or set SANDPOOL_ENDPOINT and SANDPOOL_API_KEY)',
      );
    }
    const subscription = env('SANDPOOL_SUBSCRIPTION') ?? stored?.subscription;
    const resourceGroup = env('SANDPOOL_RESOURCE_GROUP') ?? stored?.resourceGroup;
    const caFile = env('SANDPOOL_CA_FILE') ?? stored?.caFile;
    return {
      name: chosen,
      endpoint,
      apiKey,
      ...(subscription && { subscription }),
      ...(resourceGroup && { resourceGroup }),
      ...(caFile && { caFile }),
    };
  }
}
