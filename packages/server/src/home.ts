/**
 * @module home
 * The server's home (`--home`, /var/lib/sandpool by default) holds the store and its keyring, the
 * console logs of ended sessions, TLS keys, images and the sandboxes' state. Root alone may list it:
 * sandboxes, whose processes run as host ids of their own, need only pass through it to their images
 * and state, so it is 0711 (what is inside carries its own mode: the store and keyring 0600, logs and
 * TLS keys 0700). The image builds and older releases made it 0755; every start tightens it.
 */

import { chmod, mkdir } from 'node:fs/promises';

export const HOME_MODE = 0o711;

export async function protectHome(home: string): Promise<void> {
  await mkdir(home, { recursive: true, mode: HOME_MODE });
  await chmod(home, HOME_MODE);
}
