/**
 * Preloaded by `bench/cli-start.ts` (`node --import THIS --import tsx …`): when the process
 * exits, writes its CPU time so far (user + system of all its threads, µs, `process.cpuUsage()`:
 * getrusage, no clock-tick rounding) as one JSON line to the file named by XMPD_CPU_AT_EXIT.
 * Plain JavaScript with node's modules only, so that it costs every checkout the same.
 */
import { writeFileSync } from 'node:fs';

const file = process.env.XMPD_CPU_AT_EXIT;
if (file) {
  process.on('exit', (code) => {
    const { user, system } = process.cpuUsage();
    writeFileSync(file, `${JSON.stringify({ code, cpuUs: user + system })}\n`);
  });
}
