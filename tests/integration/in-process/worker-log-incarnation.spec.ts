/**
 * README, Security: no answer or log line names a worker's incarnation (who knows it with the id
 * could pass for the process in the calls it fences). A worker whose orchestrator is gone when
 * it stops logs that it could not tell it about the drain and could not unregister: those lines
 * name the call, whose URL carries the incarnation in its query; they must name it without.
 */
import { Writable } from 'node:stream';
import pino from 'pino';
import { afterEach, expect, it } from 'vitest';
import { Cluster } from '../helpers/cluster.js';

let cluster: Cluster | undefined;
afterEach(async () => {
  await cluster?.close();
  cluster = undefined;
});

it('names no incarnation in the lines of a worker that cannot reach its orchestrator as it stops', async () => {
  cluster = new Cluster();
  await cluster.startOrchestrator();
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      done();
    },
  });
  const worker = await cluster.startWorker({ logger: pino({ level: 'debug' }, destination) });
  await worker.link?.registered();
  await cluster.orchestrator.close();

  await worker.drain();

  const warned = lines.filter((line) =>
    /could not tell the orchestrator about the drain|could not unregister/.test(line),
  );
  expect(warned, lines.join('\n')).toHaveLength(2);
  expect(warned.join('\n')).toContain(`/api/workers/${worker.id}`);
  for (const line of lines) expect(line).not.toContain(worker.incarnation);
});
