import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 20_000,
    hookTimeout: 20_000,
    // Integration tests spawn servers on port 0; two cores are plenty for a few at a time.
    maxWorkers: 2,
    coverage: {
      provider: 'v8',
      include: ['src/**/*.ts'],
      exclude: ['src/server.ts', 'src/simulator/cli.ts'],
      reporter: ['text-summary', 'text'],
      thresholds: { lines: 90, branches: 80 }
    }
  }
})
