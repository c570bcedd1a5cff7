/**
 * A WebSocket client just big enough for the tests: opens an upgrade to `path` on a server, checks
 * the container answered the handshake (its `Sec-WebSocket-Accept` for our key), sends one masked
 * text frame and checks it comes back byte for byte (the test app's echo server).
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { connect } from 'node:net';

import { ADMIN_KEY, until } from './server-harness.js';

export async function assertWebSocketEchoes(serverUrl: string, path: string): Promise<void> {
  const { port, hostname } = new URL(serverUrl);
  const socket = connect(Number(port), hostname);
  const key = randomBytes(16).toString('base64');
  socket.write(
    [
      `GET ${path} HTTP/1.1`,
      `Host: ${hostname}:${port}`,
      `Authorization: Bearer ${ADMIN_KEY}`,
      'Connection: Upgrade',
      'Upgrade: websocket',
      'Sec-WebSocket-Version: 13',
      `Sec-WebSocket-Key: ${key}`,
      '',
      '',
    ].join('\r\n'),
  );
  let received = Buffer.alloc(0);
  socket.on('data', (chunk: Buffer) => (received = Buffer.concat([received, chunk])));
  try {
    await until('the 101 answer', () => received.includes('\r\n\r\n'));
    const head = received.toString().split('\r\n\r\n')[0]!;
    assert.match(head, /^HTTP\/1\.1 101 /, head);
    const accept = createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
    assert.match(head, new RegExp(`Sec-WebSocket-Accept: ${accept.replace(/[+/]/g, '\\$&')}`, 'i'));
    received = Buffer.alloc(0);
    const mask = [1, 2, 3, 4];
    const frame = Buffer.from([0x81, 0x85, ...mask, ...Buffer.from('hello').map((b, i) => b ^ mask[i % 4]!)]);
    socket.write(frame);
    await until('the frame echoed back', () => received.length >= frame.length);
    assert.deepEqual(received, frame);
  } finally {
    socket.destroy();
  }
}
