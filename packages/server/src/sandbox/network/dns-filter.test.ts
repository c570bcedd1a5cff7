import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { describe, it } from 'node:test';

import { DnsFilter, isAllowedName, questionNames, refusal } from './dns-filter.js';

/** A query for `name` (type A), as a stub resolver sends it. */
function query(name: string, id = 0x1234): Buffer {
  const labels = name
    .split('.')
    .map((label) => Buffer.concat([Buffer.from([label.length]), Buffer.from(label)]));
  const header = Buffer.from([id >> 8, id & 0xff, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
  return Buffer.concat([header, ...labels, Buffer.from([0, 0, 1, 0, 1])]);
}

describe('DnsFilter', () => {
  it('reads the question names, and refuses compression in a question', () => {
    assert.deepEqual(questionNames(query('Api.Allowed.Test')), ['api.allowed.test']);
    const pointer = Buffer.concat([query('a.test').subarray(0, 12), Buffer.from([0xc0, 0x0c, 0, 1, 0, 1])]);
    assert.equal(questionNames(pointer), undefined);
    assert.equal(questionNames(Buffer.alloc(5)), undefined);
  });

  it('allows a domain and the names below it, nothing that merely ends like it', () => {
    assert.ok(isAllowedName('allowed.test', ['allowed.test']));
    assert.ok(isAllowedName('api.allowed.test', ['allowed.test']));
    assert.ok(!isAllowedName('notallowed.test', ['allowed.test']));
    assert.ok(!isAllowedName('allowed.test.evil', ['allowed.test']));
  });

  it('answers a refused name NXDOMAIN with the question and no records', () => {
    const answer = refusal(query('x.test'), 3);
    assert.equal(answer.readUInt16BE(0), 0x1234);
    assert.equal(answer[2]! & 0x80, 0x80, 'a response');
    assert.equal(answer[3]! & 0x0f, 3);
    assert.equal(answer.readUInt16BE(6), 0);
  });

  it('answers only known sandboxes, and refuses other names on the host itself', async () => {
    const refused: string[] = [];
    const filter = new DnsFilter((_address, name) => refused.push(name));
    const port = await filter.start();
    const client = createSocket('udp4');
    const ask = (name: string) =>
      new Promise<Buffer | undefined>((resolve) => {
        const timer = setTimeout(() => resolve(undefined), 500);
        client.once('message', (message) => {
          clearTimeout(timer);
          resolve(message);
        });
        client.send(query(name), port, '127.0.0.1');
      });
    try {
      assert.equal(await ask('allowed.test'), undefined, 'an unknown source gets silence');
      // Refused names never leave the filter: the resolver named here is not asked.
      filter.set('127.0.0.1', { allowedNames: ['allowed.test'], upstream: '127.0.0.1' });
      const leak = await ask('secret.exfil.test');
      assert.equal(leak![3]! & 0x0f, 3, 'NXDOMAIN');
      assert.deepEqual(refused, ['secret.exfil.test']);
    } finally {
      client.close();
      filter.stop();
    }
  });
});
