/**
 * @module store/sealer
 * Encryption at rest for what the store must be able to read back: the token signing key, and the
 * values of pools' secrets. AES-256-GCM under a keyring, a file of base64 keys one per line, the
 * first one current (created 0600 with one fresh key when missing). Rotation: put a new key on the
 * first line and restart; the store re-seals every value under it at open, and an older key can
 * then be dropped. A copy of the database alone (a backup, a leaked file) opens nothing.
 */

import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

const PREFIX = 'sealed:v1:';
const KEY_BYTES = 32;
const IV_BYTES = 12;

interface RingKey {
  id: string;
  key: Buffer;
}

const keyId = (key: Buffer) => createHash('sha256').update(key).digest('hex').slice(0, 12);

export class Sealer {
  private readonly byId: Map<string, Buffer>;

  constructor(private readonly keys: RingKey[]) {
    if (keys.length === 0) throw new Error('a keyring needs at least one key');
    this.byId = new Map(keys.map((k) => [k.id, k.key]));
  }

  /** The keyring in `path`, created with one new key if there is none. */
  static fromFile(path: string): Sealer {
    if (!existsSync(path)) {
      mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
      writeFileSync(path, `${randomBytes(KEY_BYTES).toString('base64')}\n`, { mode: 0o600, flag: 'wx' });
    }
    chmodSync(path, 0o600);
    return Sealer.fromText(readFileSync(path, 'utf8'), path);
  }

  /** A keyring of one key that lives as long as the process (in-memory stores, tests). */
  static ephemeral(): Sealer {
    return Sealer.fromText(randomBytes(KEY_BYTES).toString('base64'));
  }

  static fromText(text: string, source = 'the keyring'): Sealer {
    const keys = text
      .split('\n')
      .map((line) => line.trim())
      .filter((line) => line !== '' && !line.startsWith('#'))
      .map((line, index) => {
        const key = Buffer.from(line, 'base64');
        if (key.length !== KEY_BYTES) {
          throw new Error(`${source}: key ${index + 1} is not ${KEY_BYTES} bytes of base64`);
        }
        return { id: keyId(key), key };
      });
    return new Sealer(keys);
  }

  /** The id of the key new values are sealed with. */
  get currentKeyId(): string {
    return this.keys[0]!.id;
  }

  seal(plaintext: string): string {
    const { id, key } = this.keys[0]!;
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', key, iv);
    const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    return `${PREFIX}${id}:${iv.toString('base64')}:${cipher.getAuthTag().toString('base64')}:${body.toString('base64')}`;
  }

  /**
   * The plaintext of a sealed value. A value without the prefix is returned as it is: it was
   * written before sealing existed, and the store's re-seal at open replaces it.
   */
  open(value: string): string {
    if (!value.startsWith(PREFIX)) return value;
    const [id = '', iv = '', tag = '', body = ''] = value.slice(PREFIX.length).split(':');
    const key = this.byId.get(id);
    if (!key) throw new Error(`a stored value is sealed with key ${id}, which the keyring no longer holds`);
    const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(iv, 'base64'));
    decipher.setAuthTag(Buffer.from(tag, 'base64'));
    return Buffer.concat([decipher.update(Buffer.from(body, 'base64')), decipher.final()]).toString('utf8');
  }

  /** Whether the value needs sealing again: plain, or sealed under a key that is no longer current. */
  isStale(value: string): boolean {
    return !value.startsWith(`${PREFIX}${this.currentKeyId}:`);
  }
}
