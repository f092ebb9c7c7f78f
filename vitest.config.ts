import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    reporters: ['default', './test/summary-reporter.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // The `lockstep` processes the tests spawn (bin/lockstep.js) run the sources under test,
    // never a dist/ built from older ones: see "Sources and the compiled package" in
    // docs/architecture.md.
    env: { LOCKSTEP_SOURCE: '1' },
  },
})
