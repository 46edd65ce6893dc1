import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['*.spec.ts'],
    // Packing builds seven packages (one TypeScript program, about 15 s on 2 cores) and npm installs them with their
    // dependencies (a minute or more with a cold npm cache): generous, as the suite's other
    // projects run beside it.
    hookTimeout: 300_000,
    testTimeout: 120_000,
  },
});
