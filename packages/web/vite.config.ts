import { defineConfig } from 'vite';

// Served by the server under /dashboard/; JSX compiles to Preact's automatic runtime.
export default defineConfig({
  base: '/dashboard/',
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  build: { outDir: 'dist', emptyOutDir: true, target: 'es2022', sourcemap: true },
});
