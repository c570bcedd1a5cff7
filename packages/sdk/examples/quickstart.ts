// Runs Python in a session, moves a file in and out, and ends the session.
//
//   SANDPOOL_ENDPOINT=https://127.0.0.1:8443 SANDPOOL_API_KEY=sp_… node --import tsx examples/quickstart.ts
//
// SANDPOOL_POOL names the pool (default `default`); SANDPOOL_SUBSCRIPTION and SANDPOOL_RESOURCE_GROUP
// its scope (default: the server's defaults). For a server with a self-signed certificate, start Node
// with NODE_EXTRA_CA_CERTS=<home>/tls/cert.pem.
import { ApiError, SandpoolClient } from '@sandpool/sdk';

const client = new SandpoolClient({
  endpoint: process.env.SANDPOOL_ENDPOINT ?? 'https://127.0.0.1:8443',
  credential: process.env.SANDPOOL_API_KEY ?? '',
  ...(process.env.SANDPOOL_SUBSCRIPTION && { subscription: process.env.SANDPOOL_SUBSCRIPTION }),
  ...(process.env.SANDPOOL_RESOURCE_GROUP && { resourceGroup: process.env.SANDPOOL_RESOURCE_GROUP }),
});
const session = client.pool(process.env.SANDPOOL_POOL ?? 'default').session(`quickstart-${Date.now()}`);

// State persists across requests with the same identifier.
await session.execute('total = 6 * 7');
const run = await session.execute('print("hello from the sandbox")\ntotal');
console.log('stdout:', run.result?.stdout.trim());
console.log('value:', run.result?.executionResult);

await session.files.upload('numbers.csv', 'n\n1\n2\n3\n');
await session.execute(
  [
    'import pandas as pd',
    'total = int(pd.read_csv("numbers.csv").n.sum())',
    'open("sum.txt", "w").write(str(total))',
  ].join('\n'),
);
const sum = new TextDecoder().decode(await session.files.download('sum.txt'));
console.log('sum:', sum);
console.log('files:', (await session.files.list()).map((f) => f.name).join(', '));

try {
  await session.execute('1', { timeoutInSeconds: 999 });
} catch (error) {
  if (error instanceof ApiError) console.log('refused:', error.code, error.target);
}
await session.stop();
console.log('stopped');
