// Type-checked lint for the whole repo; `no-restricted-imports` holds the layer boundaries of
// packages/server/src (api → pool → interpreter | sandbox → OS; store and observability are leaves),
// and `import-x/no-cycle` refuses any import cycle in the server's source.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import globals from 'globals';
import { importX } from 'eslint-plugin-import-x';
import { createTypeScriptImportResolver } from 'eslint-import-resolver-typescript';

const layer = (files, forbidden, why) => ({
  files,
  rules: {
    'no-restricted-imports': [
      'error',
      { patterns: forbidden.map((group) => ({ group: [group], message: why })) },
    ],
  },
});

export default tseslint.config(
  {
    ignores: ['**/dist/**', '**/node_modules/**', 'interpreter/**', 'images/**', '**/*.gen.ts', '**/*_pb.ts'],
  },
  js.configs.recommended,
  ...tseslint.configs.strictTypeChecked,
  {
    languageOptions: {
      globals: globals.node,
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/switch-exhaustiveness-check': 'error',
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true }],
      '@typescript-eslint/no-non-null-assertion': 'off',
      '@typescript-eslint/no-confusing-void-expression': 'off',
    },
  },
  layer(
    ['packages/server/src/sandbox/**'],
    ['**/pool/*', '**/interpreter/*', '**/api/*'],
    'sandbox/ sits below pool, interpreter and api',
  ),
  layer(
    ['packages/server/src/interpreter/**'],
    ['**/pool/*', '**/sandbox/*', '**/api/*'],
    'interpreter/ knows neither the pool nor the sandbox runtime',
  ),
  layer(
    ['packages/server/src/pool/**'],
    ['**/api/*', '**/oci/*'],
    'pool/ uses the SandboxDriver interface, never a runtime, and knows nothing of HTTP',
  ),
  layer(
    ['packages/server/src/api/**'],
    ['**/sandbox/*', '**/interpreter/*'],
    'api/ parses and renders; it reaches sandboxes and interpreters only through pool/',
  ),
  layer(
    ['packages/server/src/store/**'],
    ['**/api/*', '**/pool/*', '**/interpreter/*', '**/sandbox/*', '**/observability/*', '**/auth/*'],
    'store/ is a leaf: everyone may call it, it calls no one',
  ),
  layer(
    ['packages/server/src/observability/**'],
    ['**/api/*', '**/pool/*', '**/interpreter/*', '**/sandbox/*', '**/auth/*'],
    'observability/ is a leaf: everyone may call it, it calls no one (beyond the store’s row types)',
  ),
  {
    files: ['packages/server/src/**/*.ts'],
    plugins: { 'import-x': importX },
    settings: {
      'import-x/extensions': ['.ts', '.js'],
      'import-x/parsers': { '@typescript-eslint/parser': ['.ts'] },
      'import-x/resolver-next': [createTypeScriptImportResolver()],
    },
    rules: { 'import-x/no-cycle': ['error', { ignoreExternal: true }] },
  },
  layer(
    ['packages/sdk/src/**'],
    ['node:*', '**/server/**'],
    'the SDK runs in browsers too and knows the server only through openapi.json',
  ),
  layer(['packages/cli/src/**'], ['**/server/**'], 'the CLI reaches the server only through the SDK'),
  layer(
    ['packages/web/src/**'],
    ['node:*', '**/server/**', '**/cli/**'],
    'the dashboard runs in the browser and reaches the server only through the SDK',
  ),
  { files: ['packages/web/src/**'], languageOptions: { globals: globals.browser } },
  { files: ['**/*.js', '**/*.mjs'], ...tseslint.configs.disableTypeChecked },
  {
    files: ['**/*.test.ts', 'packages/*/test/**', 'bench/**'],
    rules: {
      '@typescript-eslint/no-floating-promises': 'off',
      // Tests read wire JSON as the clients do, untyped, and assert on its shape.
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
    },
  },
);
