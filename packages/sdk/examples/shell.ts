// Runs command lines in a Shell pool's session; the exit status comes back in `status` ("0").
//
//   SANDPOOL_ENDPOINT=… SANDPOOL_API_KEY=… SANDPOOL_POOL=<a Shell pool> node --import tsx examples/shell.ts
import { SandpoolClient } from '@sandpool/sdk';

const client = new SandpoolClient({
  endpoint: process.env.SANDPOOL_ENDPOINT ?? 'https://127.0.0.1:8443',
  credential: process.env.SANDPOOL_API_KEY ?? '',
  ...(process.env.SANDPOOL_SUBSCRIPTION && { subscription: process.env.SANDPOOL_SUBSCRIPTION }),
  ...(process.env.SANDPOOL_RESOURCE_GROUP && { resourceGroup: process.env.SANDPOOL_RESOURCE_GROUP }),
});
const session = client.pool(process.env.SANDPOOL_POOL ?? 'shell').session(`shell-${Date.now()}`);

await session.run('seq 1 5 > numbers.txt');
const sum = await session.run('paste -sd+ numbers.txt | bc');
console.log('sum:', sum.result?.stdout.trim(), 'exit:', sum.status);
const missing = await session.run('cat nothing.txt');
console.log('exit:', missing.result?.exitCode, 'stderr:', missing.result?.stderr.trim());
await session.stop();
