import { FakeDriver } from './fake-driver.js';
import { DEFAULT_RESOURCES } from '../driver.js';
import { driverContract } from '../../../test/driver-contract.js';

driverContract({
  name: 'fake',
  driver: new FakeDriver(),
  idPrefix: 'fake',
  spec: {
    runtime: 'runc',
    rootfs: '/nowhere',
    command: ['sleep'],
    env: {},
    resources: DEFAULT_RESOURCES,
    readOnlyBinds: [],
  },
});
