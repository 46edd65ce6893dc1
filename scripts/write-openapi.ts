/** `pnpm openapi`: writes openapi/orchestrator.json and openapi/worker.json from the contract. */
import { mkdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { orchestratorOpenApi, workerOpenApi } from '@mpd/contract/openapi';

const dir = fileURLToPath(new URL('../openapi/', import.meta.url));
mkdirSync(dir, { recursive: true });
for (const [name, doc] of [
  ['orchestrator', orchestratorOpenApi()],
  ['worker', workerOpenApi()],
] as const) {
  writeFileSync(`${dir}${name}.json`, `${JSON.stringify(doc, null, 2)}\n`);
  console.log(`wrote openapi/${name}.json`);
}
