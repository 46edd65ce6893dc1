/**
 * How many executions that ended on a module host it keeps the sinks of (besides its last one's),
 * for the `ctx.logger` lines their modules' code logs later, from a timer or a callback it left
 * running: each is logged through its own execution's masker and logger (`toModuleLogger`). One
 * whose execution logs again is kept as the newest, so that a module's interval that goes on
 * logging keeps its own. A line of an execution older than that is logged without its text
 * (its secrets are no longer known).
 */
export const EARLIER_SINKS = 32;

/**
 * Of how many executions further back than {@link EARLIER_SINKS} a host keeps the module's name
 * (about 100 bytes each), so that a line of one of them, logged without its text, still says
 * which module left code running: the host's `logs` messages carry only the executionId.
 */
export const EARLIER_NAMES = 256;

/**
 * The sinks of the executions that ended on one module host before its last one, with their
 * executionIds and module names, newest last: a ring of {@link EARLIER_SINKS}, each kept over the
 * oldest. Arrays rather than a `Map`, whose upkeep (a set, a delete and an iterator) every module
 * would pay: here a module costs three writes (five once the ring is full), and only a late line
 * a search.
 *
 * An execution whose module logs again ({@link EarlierSinks.take}) becomes the newest without
 * pushing any other out: the ones after it move back one slot. (Written over the oldest slot
 * instead, each late line of one chatty leftover pushed another execution out, whose own late
 * lines then went unshown; found in review of round H.)
 */
export class EarlierSinks<Sink> {
  private readonly ids: (string | undefined)[];
  private readonly names: (string | undefined)[];
  private readonly sinks: (Sink | undefined)[];
  /** The slot the next kept execution takes: the oldest's, once the ring is full. */
  private next = 0;
  /** The executionIds and module names of those pushed out, a ring of `nameCapacity` (see {@link EARLIER_NAMES}). */
  private readonly goneIds: (string | undefined)[];
  private readonly goneNames: (string | undefined)[];
  private goneNext = 0;

  constructor(
    private readonly capacity = EARLIER_SINKS,
    private readonly nameCapacity = EARLIER_NAMES,
  ) {
    this.ids = new Array<string | undefined>(capacity);
    this.names = new Array<string | undefined>(capacity);
    this.sinks = new Array<Sink | undefined>(capacity);
    this.goneIds = new Array<string | undefined>(nameCapacity);
    this.goneNames = new Array<string | undefined>(nameCapacity);
  }

  /** Keeps `sink` of an execution that just ended as the newest, over the oldest (whose module's name is kept). */
  keep(executionId: string, moduleName: string, sink: Sink): void {
    const pushedOut = this.ids[this.next];
    if (pushedOut !== undefined) {
      this.goneIds[this.goneNext] = pushedOut;
      this.goneNames[this.goneNext] = this.names[this.next];
      this.goneNext = (this.goneNext + 1) % this.nameCapacity;
    }
    this.ids[this.next] = executionId;
    this.names[this.next] = moduleName;
    this.sinks[this.next] = sink;
    this.next = (this.next + 1) % this.capacity;
  }

  /** The sink of `executionId`, now kept as the newest; undefined when it is not kept (any more). */
  take(executionId: string): Sink | undefined {
    const slot = this.ids.indexOf(executionId);
    if (slot < 0) return undefined;
    const sink = this.sinks[slot]!;
    const name = this.names[slot];
    // The kept ones fill the slots from the oldest to the newest (just before `next`), in order:
    // those after this one move back one slot, and it takes the newest's.
    const newest = (this.next + this.capacity - 1) % this.capacity;
    for (let at = slot; at !== newest;) {
      const after = (at + 1) % this.capacity;
      this.ids[at] = this.ids[after];
      this.names[at] = this.names[after];
      this.sinks[at] = this.sinks[after];
      at = after;
    }
    this.ids[newest] = executionId;
    this.names[newest] = name;
    this.sinks[newest] = sink;
    return sink;
  }

  /** The module of an execution pushed out of the ring (its name kept, see {@link EARLIER_NAMES}); undefined when not known. */
  moduleOf(executionId: string): string | undefined {
    const slot = this.goneIds.indexOf(executionId);
    return slot < 0 ? undefined : this.goneNames[slot];
  }
}
