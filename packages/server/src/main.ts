/**
 * @module main
 * `sandpool serve [--flag value …]`: starts the server with the configuration from flags, environment
 * and file, prints where it listens (and, on first start, the admin key), and shuts down gracefully
 * on SIGINT/SIGTERM, leaving sandboxes running for the next start.
 */

import closeWithGrace from 'close-with-grace';

import { ConfigError, describeSettings, loadConfig } from './config.js';
import { startServer } from './server.js';

const SHUTDOWN_GRACE_MS = 10_000;

function usage(): string {
  const lines = describeSettings().map((s) => `  ${s.flag.padEnd(26)} ${s.env.padEnd(32)} ${s.description}`);
  return ['usage: sandpool serve [--config file.json] [--setting value …]', '', ...lines, ''].join('\n');
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  if (args[0] === 'serve') args.shift();
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(usage());
    return;
  }
  const config = loadConfig({ argv: args });
  const server = await startServer(config);

  const poolEndpoint = `${server.url}/subscriptions/${config.defaultSubscription}/resourceGroups/${config.defaultResourceGroup}/sessionPools/${config.defaultPool}`;
  const banner = [
    `Sandpool is listening on ${server.url}`,
    ...(server.tlsFingerprint ? [`TLS certificate SHA-256: ${server.tlsFingerprint}`] : []),
    ...(config.defaultPool ? [`Default pool endpoint: ${poolEndpoint}`] : []),
    `Dashboard: ${server.url}/dashboard/ (sign in with an API key or a token)`,
    ...(server.bootstrapKey ? [`Admin API key (shown once, stored hashed): ${server.bootstrapKey}`] : []),
  ];
  process.stderr.write(`\n${banner.join('\n')}\n\n`);

  closeWithGrace({ delay: SHUTDOWN_GRACE_MS }, async ({ signal, err }) => {
    if (err) server.app.log.error({ err }, 'shutting down after an error');
    else server.app.log.info({ signal }, 'shutting down');
    await server.close();
  });
}

main().catch((error: unknown) => {
  if (error instanceof ConfigError) {
    process.stderr.write(`sandpool: ${error.message}\n\n${usage()}`);
    process.exitCode = 2;
    return;
  }
  console.error(error);
  // A start that failed halfway may hold connections open (agents it was reattaching): a server that
  // cannot serve ends here rather than linger without listening.
  process.exit(1);
});
