import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { addressing, allowedNames, isAllowEntry, parseAllowEntry, parseDenied } from './egress.js';

describe('egress', () => {
  it('gives each host id range its own /30 and interface name', () => {
    assert.deepEqual(addressing('10.64.0.0/14', 0), {
      hostInterface: 'sbx-0',
      gateway: '10.64.0.1',
      address: '10.64.0.2',
    });
    assert.deepEqual(addressing('10.64.0.0/14', 65_535), {
      hostInterface: 'sbx-65535',
      gateway: '10.67.255.253',
      address: '10.67.255.254',
    });
    assert.throws(() => addressing('10.64.0.0/24', 64), /no room/);
  });

  it('reads the deny rule’s kernel log lines and nothing else', () => {
    const line =
      '4,4377,14286424300,-;sandpool-egress-deny: IN=sbx-12 OUT=eth0 MAC=be:ec SRC=10.64.0.50 DST=198.51.100.1 LEN=60 TOS=0x00 PROTO=TCP SPT=34912 DPT=8080 WINDOW=64240 SYN URGP=0';
    assert.deepEqual(parseDenied(line), {
      hostInterface: 'sbx-12',
      destination: '198.51.100.1',
      protocol: 'tcp',
      port: 8080,
      sourcePort: 34912,
    });
    assert.deepEqual(
      parseDenied(
        '6,1,2,-;sandpool-egress-deny: IN=sbx-1 OUT=eth0 SRC=10.64.0.6 DST=192.0.2.9 PROTO=ICMP TYPE=8',
      ),
      {
        hostInterface: 'sbx-1',
        destination: '192.0.2.9',
        protocol: 'icmp',
        port: null,
        sourcePort: null,
      },
    );
    assert.equal(parseDenied('6,1,2,-;eth0: link up'), undefined);
  });

  it('takes IPv4 addresses, CIDRs and domain names in an allowlist, each with an optional port', () => {
    for (const good of [
      '203.0.113.7',
      '203.0.113.0/24',
      'pypi.org',
      'files.pythonhosted.org',
      'api.bank.example:443',
      '10.0.0.0/24:5432/tcp',
      '203.0.113.9:514/udp',
    ]) {
      assert.ok(isAllowEntry(good), good);
    }
    for (const bad of [
      '300.1.1.1',
      '10.0.0.0/33',
      'localhost',
      '*.example.com',
      'http://x.org',
      '::1',
      '',
      'pypi.org:0',
      'pypi.org:65536',
      'pypi.org:443/sctp',
      'pypi.org:443:80',
    ]) {
      assert.ok(!isAllowEntry(bad), bad);
    }
    assert.deepEqual(parseAllowEntry('10.0.0.0/24:5432/tcp'), {
      target: '10.0.0.0/24',
      port: 5432,
      protocol: 'tcp',
    });
    assert.deepEqual(allowedNames(['10.0.0.0/24:5432', 'Pypi.org', 'api.bank.example:443']), [
      'pypi.org',
      'api.bank.example',
    ]);
  });
});
