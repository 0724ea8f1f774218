import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 20000,
    hookTimeout: 20000,
    // Real sockets on loopback: keep runs apart so timings stay honest on 2 cores.
    fileParallelism: true,
    maxWorkers: 2,
  },
});
