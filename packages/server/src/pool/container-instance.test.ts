import assert from 'node:assert/strict';
import { describe, it, mock } from 'node:test';

import type { Sandbox, SandboxDriver } from '../sandbox/driver.js';
import type { ConsoleLogArchive } from './console-log.js';
import { CONTAINER_LABEL, ContainerInstance, containerCommand } from './container-instance.js';
import type { ContainerTemplate } from './pool-spec.js';

const image = { entrypoint: ['/entry'], cmd: ['--serve'], env: [], cwd: '/' };
const template = (command: string[], args: string[]): ContainerTemplate => ({
  name: 'app',
  image: 'registry.example/app:1',
  imageDigest: null,
  command,
  args,
  env: [],
  targetPort: 8080,
  probes: [],
  registry: null,
});

describe('containerCommand', () => {
  it('follows Kubernetes: command replaces the entrypoint, args the image’s cmd', () => {
    assert.deepEqual(containerCommand(image, template([], [])), ['/entry', '--serve']);
    assert.deepEqual(containerCommand(image, template([], ['--debug'])), ['/entry', '--debug']);
    assert.deepEqual(containerCommand(image, template(['/other'], [])), ['/other']);
    assert.deepEqual(containerCommand(image, template(['/other'], ['-x'])), ['/other', '-x']);
    assert.deepEqual(containerCommand({ ...image, entrypoint: [] }, template([], [])), ['--serve']);
  });
});

describe('ContainerInstance watching its container', () => {
  it('lets a liveness check that the session’s end overtakes fail quietly: nothing rejects unheard', async () => {
    const unhandled: unknown[] = [];
    const hear = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', hear);
    let answerListening: (listening: boolean) => void = () => undefined;
    let destroyed = false;
    const driver = {
      openPort: () =>
        destroyed
          ? Promise.reject(new Error('the sandbox is gone'))
          : Promise.resolve('/nonexistent/port.sock'),
      isListening: () => new Promise<boolean>((resolve) => (answerListening = resolve)),
      inspect: () => Promise.resolve({ status: 'running' }),
      destroy: () => {
        destroyed = true;
        return Promise.resolve();
      },
    } as unknown as SandboxDriver;
    const archive = { keep: () => Promise.resolve() } as unknown as ConsoleLogArchive;
    const liveness = {
      type: 'Liveness',
      check: { kind: 'httpGet', port: 8080, path: '/health', headers: [] },
      initialDelaySeconds: 0,
      periodSeconds: 1,
      timeoutSeconds: 1,
      failureThreshold: 3,
    };
    const sandbox = {
      id: 'sbx',
      consoleLogPath: '/nonexistent/console.log',
      labels: { [CONTAINER_LABEL]: JSON.stringify({ targetPort: 8080, probes: [liveness] }) },
    } as unknown as Sandbox;
    mock.timers.enable({ apis: ['setInterval'] });
    try {
      const session = await ContainerInstance.attach(driver, archive, sandbox);
      mock.timers.tick(1000); // a liveness check starts and waits to hear whether the port listens
      await session.destroy(); // the session ends meanwhile (a stop, an expiry): its port bridge goes
      answerListening(true); // the check goes on, to a port that is gone
      for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
      assert.deepEqual(unhandled, []);
    } finally {
      mock.timers.reset();
      process.off('unhandledRejection', hear);
    }
  });
});
