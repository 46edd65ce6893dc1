/**
 * What the host did to the guest while a benchmark was timed (issue 13, round J: benchmark 6's
 * bare side swung 210–385 MiB/s).
 *
 * The benchmarks' VM (Firecracker, nested) boots with `deferred_init=lazy` (most of its memory is
 * handed to the kernel's allocator only when first needed, and the host backs a page only when
 * the guest first touches it) and free page reporting (`page_reporting`, a `virtio_balloon`: free
 * pages are reported to the host, which may take them back; the next use faults them in again).
 * So the cost of a new page-cache page depends on where the allocator takes it from, and that
 * changes with the VM's age and the host's own state: measured (docs/performance.md, round J), writing 1 GiB
 * into the page cache took 0.17–0.5 s on pages the host still held and 2.4 s on pages it had not
 * (yet, or again), and the bench's bare transfer 342–392 MiB/s against 198–222 MiB/s; the same
 * comparison half an hour later gave ~400 MiB/s either way. The bench cannot choose that state
 * (touching memory before each side, to have it held, measured no better: docs/performance.md); it prints
 * {@link reportedBytes} per side so that a reader sees it.
 */
import { readFileSync } from 'node:fs';

const REPORTED_KIB = '/sys/module/page_reporting/parameters/reported_kib';

/**
 * How much free memory the guest has reported to the host since it booted, bytes (the kernel's
 * `page_reporting` module's `reported_kib`); NaN where the kernel has no such counter.
 */
export function reportedBytes(): number {
  try {
    return Number(readFileSync(REPORTED_KIB, 'utf8').trim()) * 1024;
  } catch {
    return Number.NaN;
  }
}

/** CPU time the hypervisor took from this machine's cores so far (`steal` of /proc/stat), ms; NaN without /proc. */
export function stealMs(): number {
  try {
    const fields = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!.trim().split(/\s+/);
    // cpu user nice system idle iowait irq softirq steal …, in 10 ms ticks.
    return Number(fields[8] ?? Number.NaN) * 10;
  } catch {
    return Number.NaN;
  }
}
