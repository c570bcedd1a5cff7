/**
 * The Kubernetes manifests, checked without an API server (none runs on these machines): every
 * object of the base parses and validates against the Kubernetes 1.27 schemas (kubernetes-models),
 * the kustomization lists every file, and the DaemonSet carries what a Sandpool node needs: the
 * probes on /readyz and /healthz, a preStop drain, its name from the node, the store's URL and
 * keyring from a secret, and only settings the server or the CLI knows.
 */
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { describe, it } from 'node:test';

import { DaemonSet } from 'kubernetes-models/apps/v1';
import { Namespace, Service, ServiceAccount } from 'kubernetes-models/v1';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { parseAllDocuments } from 'yaml';

import { describeSettings } from '../../packages/server/src/config.js';

const BASE = new URL('./base/', import.meta.url);
const MODELS: Record<string, new (data: never) => { validate(): void }> = {
  'v1/Namespace': Namespace,
  'v1/ServiceAccount': ServiceAccount,
  'v1/Service': Service,
  'apps/v1/DaemonSet': DaemonSet,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
};
/** What the CLI reads from the environment (the preStop drain signs in with these). */
const CLI_ENV = new Set(['SANDPOOL_ENDPOINT', 'SANDPOOL_API_KEY', 'SANDPOOL_CA_FILE']);

interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string };
  [field: string]: unknown;
}

function read(file: string): Manifest[] {
  return parseAllDocuments(readFileSync(new URL(file, BASE), 'utf8')).map((doc) => {
    assert.deepEqual(doc.errors, [], `${file} is not valid YAML`);
    return doc.toJSON() as Manifest;
  });
}

const kustomization = read('kustomization.yaml')[0] as unknown as { resources: string[] };
const files = readdirSync(BASE).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml');
const objects = files.flatMap(read);
const daemonSet = objects.find((o) => o.kind === 'DaemonSet') as unknown as {
  spec: {
    template: {
      spec: { containers: Container[]; volumes: { name: string; secret?: { secretName: string } }[] };
    };
  };
};
interface Container {
  env: { name: string; value?: string; valueFrom?: Record<string, Record<string, string>> }[];
  readinessProbe: { httpGet: { path: string; scheme: string } };
  livenessProbe: { httpGet: { path: string; scheme: string } };
  lifecycle: { preStop: { exec: { command: string[] } } };
  securityContext: { privileged: boolean };
}

describe('Kubernetes manifests', () => {
  it('lists every file of the base in its kustomization', () => {
    assert.deepEqual([...kustomization.resources].sort(), [...files].sort());
  });

  it('validates every object against the Kubernetes schemas', () => {
    for (const object of objects) {
      const Model = MODELS[`${object.apiVersion}/${object.kind}`];
      assert.ok(Model, `no schema check for ${object.apiVersion} ${object.kind}`);
      assert.doesNotThrow(
        () => new Model(object as never).validate(),
        `${object.kind} ${object.metadata.name}`,
      );
    }
  });

  it('gives each node its probes, a preStop drain, its name and the store from secrets', () => {
    const [container] = daemonSet.spec.template.spec.containers;
    assert.ok(container);
    assert.deepEqual(
      [container.readinessProbe.httpGet, container.livenessProbe.httpGet].map((g) => `${g.scheme} ${g.path}`),
      ['HTTPS /readyz', 'HTTPS /healthz'],
    );
    assert.deepEqual(container.lifecycle.preStop.exec.command, [
      'sandpool',
      'node',
      'drain',
      '$(SANDPOOL_NODE_NAME)',
      '--wait',
    ]);
    const env = new Map(container.env.map((e) => [e.name, e]));
    assert.equal(env.get('SANDPOOL_NODE_NAME')?.valueFrom?.fieldRef?.fieldPath, 'spec.nodeName');
    assert.equal(
      env.get('SANDPOOL_NODE_URL')?.value,
      'https://$(POD_IP):8443',
      'the URL other nodes forward to',
    );
    assert.equal(env.get('SANDPOOL_STORE')?.valueFrom?.secretKeyRef?.name, 'sandpool-store');
    const keyring = daemonSet.spec.template.spec.volumes.find((v) => v.name === 'store-keys');
    assert.equal(keyring?.secret?.secretName, 'sandpool-store');
    assert.equal(container.securityContext.privileged, true, 'a node makes sandboxes on its host');
  });

  it('sets only settings the server or the CLI knows', () => {
    const known = new Set([...describeSettings().map((s) => s.env), ...CLI_ENV]);
    const [container] = daemonSet.spec.template.spec.containers;
    for (const { name } of container!.env) {
      if (name.startsWith('SANDPOOL_')) assert.ok(known.has(name), `${name} is not a setting`);
    }
  });

  it('shapes the optional CloudNativePG cluster as that operator reads it', () => {
    const [cluster] = parseAllDocuments(
      readFileSync(new URL('./cloudnative-pg/cluster.yaml', import.meta.url), 'utf8'),
    ).map(
      (doc) =>
        doc.toJSON() as Manifest & {
          spec: { instances: number; bootstrap: { initdb: { database: string } } };
        },
    );
    assert.equal(cluster?.apiVersion, 'postgresql.cnpg.io/v1');
    assert.equal(cluster.kind, 'Cluster');
    assert.ok(cluster.spec.instances >= 1);
    assert.equal(cluster.spec.bootstrap.initdb.database, 'sandpool');
  });
});
