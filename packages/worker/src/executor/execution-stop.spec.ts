import { describe, expect, it } from 'vitest';
import { ExecutionStop } from './execution-stop.js';

describe('ExecutionStop', () => {
  it('tells its listeners, then its signal, once, with the first reason', () => {
    const stop = new ExecutionStop();
    const heard: string[] = [];
    stop.signal.addEventListener('abort', () => heard.push(`signal: ${String(stop.signal.reason)}`));
    stop.onAbort(() => heard.push(`listener: ${String(stop.reason)}`));
    stop.abort('timeout');
    stop.abort('cancel');
    expect(heard).toEqual(['listener: timeout', 'signal: timeout']);
    expect(stop.aborted).toBe(true);
  });

  it('makes its signal only when read, aborted with the reason if it was stopped before', () => {
    const stop = new ExecutionStop();
    stop.abort('cancelled');
    expect(stop.signal.aborted).toBe(true);
    expect(stop.signal.reason).toBe('cancelled');
    let heard = false;
    stop.onAbort(() => (heard = true));
    expect(heard).toBe(true);
  });
});
