/** The lines the module output benchmark writes. */

/** Line `index` (0-based): 100 characters, `line 000042 ` and filler. */
export const outputLine = (index: number): string => `line ${String(index).padStart(6, '0')} `.padEnd(100, 'x');

/**
 * A `node -e` script writing `outputLine(0)` … `outputLine(N - 1)` (N: its first argument) to
 * stdout, in 64 KiB writes, honouring back-pressure: the command the benchmark's modules run.
 */
export const OUTPUT_GENERATOR = `
const n = Number(process.argv[1]);
const line = (i) => ('line ' + String(i).padStart(6, '0') + ' ').padEnd(100, 'x');
let i = 0;
function more() {
  while (i < n) {
    let chunk = '';
    while (i < n && chunk.length < 65536) chunk += line(i++) + '\\n';
    if (!process.stdout.write(chunk)) return void process.stdout.once('drain', more);
  }
}
more();
`;
