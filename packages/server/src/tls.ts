/**
 * @module tls
 * The server's certificate: the operator's, or a self-signed one generated on first start for local
 * use (Azure's SDKs refuse to send a bearer token over plain HTTP). openssl makes the pair; Node can
 * use certificates but not create them.
 */

import { X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

import { runChecked, type CommandRunner } from './sandbox/command.js';

export interface TlsMaterial {
  key: Buffer;
  cert: Buffer;
  /** SHA-256 fingerprint, for clients that pin a self-signed certificate. */
  fingerprint: string;
  selfSigned: boolean;
}

export async function loadTls(
  options: { certFile: string; keyFile: string; dir: string; hostnames: string[] },
  run: CommandRunner,
): Promise<TlsMaterial> {
  let certFile = options.certFile;
  let keyFile = options.keyFile;
  const selfSigned = !certFile || !keyFile;
  if (selfSigned) {
    certFile = join(options.dir, 'self-signed.crt');
    keyFile = join(options.dir, 'self-signed.key');
    if (!existsSync(certFile) || !existsSync(keyFile)) {
      mkdirSync(options.dir, { recursive: true, mode: 0o700 });
      const names = options.hostnames.map((h) => (/^[\d.]+$|:/.test(h) ? `IP:${h}` : `DNS:${h}`)).join(',');
      await runChecked(run, 'openssl', [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-days',
        '825',
        '-subj',
        '/CN=sandpool',
        '-addext',
        `subjectAltName=${names}`,
        '-keyout',
        keyFile,
        '-out',
        certFile,
      ]);
    }
  }
  const [key, cert] = await Promise.all([readFile(keyFile), readFile(certFile)]);
  return { key, cert, fingerprint: new X509Certificate(cert).fingerprint256, selfSigned };
}
