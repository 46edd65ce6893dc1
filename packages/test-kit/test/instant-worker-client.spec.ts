import { describe, expect, it } from 'vitest';
import { instantWorkerClient, SPEC_EXAMPLES } from '../src/index.js';

describe('instantWorkerClient', () => {
  it("answers execute like a worker whose module succeeded (the spec's body), on a later turn, and cancel with success", async () => {
    const started: string[] = [];
    const client = instantWorkerClient({ onExecute: (body) => started.push(body.moduleTypeName) });
    let answered = false;
    const answer = client.execution.execute({ body: { executionId: 'exec-1', moduleTypeName: 'build' } });
    void answer.then(() => (answered = true));
    expect(started).toEqual(['build']);
    await Promise.resolve();
    expect(answered).toBe(false);
    const { status, body } = await answer;
    expect(status).toBe(200);
    expect(Object.keys(body).sort()).toEqual(Object.keys(SPEC_EXAMPLES.executeOk).sort());
    expect(body).toMatchObject({
      executionId: 'exec-1',
      success: true,
      serializedResult: 'null',
      duration: '00:00:00',
    });
    expect(body.startTime).toMatch(/^\d{4}-\d\d-\d\dT/);
    expect(await client.execution.cancel({ body: { executionId: 'exec-1' } })).toEqual({
      status: 200,
      body: SPEC_EXAMPLES.cancelOk,
    });
    await client.close();
  });
});
