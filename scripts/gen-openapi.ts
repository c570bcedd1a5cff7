// Writes openapi.json from the server's route schemas (npm run gen). Commit the result: a test fails
// when the committed document differs from what the routes say, and the SDK's types come from it.
import { writeFileSync } from 'node:fs';

import { renderOpenApiDocument } from '../packages/server/src/openapi-document.js';

const target = new URL('../openapi.json', import.meta.url);
writeFileSync(target, await renderOpenApiDocument());
console.log(`wrote ${target.pathname}`);
