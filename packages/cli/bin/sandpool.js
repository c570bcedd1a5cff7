#!/usr/bin/env node
// The sandpool command. The CLI itself is src/main.ts, compiled to dist/ by `npm run build`.
import { main } from '../dist/src/main.js';

process.exitCode = await main(process.argv.slice(2), {
  env: (name) => process.env[name],
  stdout: (data) => process.stdout.write(data),
  stderr: process.stderr,
});
