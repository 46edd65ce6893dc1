/**
 * A vitest `globalSetup` for the projects whose tests start the orchestrator's or the worker's
 * CLI: builds their bundles before the first test (see `cliBundle`), so that no test's event loop
 * is blocked 1–3 s by a build.
 */
import { prebuildCliBundles } from './cli-bundles.js';

export default function setup(): void {
  prebuildCliBundles();
}
