/** What a sweep needs of a counter: when its window ends. */
export interface Expiring {
  resetAt: number
}

export interface SteppedSweepOptions<C extends Expiring> {
  now: () => number
  /** Whether an ended counter may go; default: its window has ended. */
  isDone?: (counter: C, now: number) => boolean
  /** How often a sweep starts, in ms. */
  intervalMs: number
  /** Counters looked at per event-loop turn. */
  batchSize: number
}

function ended(counter: Expiring, now: number): boolean {
  return counter.resetAt <= now
}

/**
 * Deletes ended counters from tables of counters (one table per window length), `batchSize` of them
 * per event-loop turn, so a million ended counters never block the loop at once. A Map iterator
 * stays valid while entries are deleted, so a sweep resumes where its last turn stopped.
 */
export class SteppedSweep<C extends Expiring = Expiring> {
  readonly #tables: Map<string, Map<string, C>>
  readonly #now: () => number
  readonly #isDone: (counter: C, now: number) => boolean
  readonly #batch: number
  readonly #sweeper: NodeJS.Timeout
  /** Where the running sweep is: the table it is in and its place in that table. */
  #sweepTables: Iterator<Map<string, C>> | undefined
  #sweepTable: Map<string, C> | undefined
  #sweepKeys: Iterator<string> | undefined
  #turn: NodeJS.Timeout | undefined

  constructor(tables: Map<string, Map<string, C>>, options: SteppedSweepOptions<C>) {
    this.#tables = tables
    this.#now = options.now
    this.#isDone = options.isDone ?? ended
    this.#batch = options.batchSize
    this.#sweeper = setInterval(() => this.#start(), options.intervalMs)
    this.#sweeper.unref()
  }

  /** A whole sweep at once (tests, or a caller that wants the memory back now). */
  all(): void {
    this.#sweepTables = undefined
    while (!this.step(Number.POSITIVE_INFINITY));
  }

  /**
   * Continues the current sweep (or starts one) over at most `limit` counters; true when the
   * sweep has been through every table.
   */
  step(limit = this.#batch): boolean {
    if (this.#sweepTables === undefined) {
      this.#sweepTables = this.#tables.values()
      this.#sweepTable = undefined
      this.#sweepKeys = undefined
    }
    const now = this.#now()
    let seen = 0
    while (seen < limit) {
      if (this.#sweepKeys === undefined) {
        const next = this.#sweepTables.next()
        if (next.done) {
          this.#sweepTables = undefined
          return true
        }
        this.#sweepTable = next.value
        // Keys, not entries: an entry is a fresh [key, value] array per counter.
        this.#sweepKeys = next.value.keys()
      }
      const entry = this.#sweepKeys.next()
      if (entry.done) {
        this.#sweepKeys = undefined
        continue
      }
      seen++
      const table = this.#sweepTable!
      if (this.#isDone(table.get(entry.value)!, now)) table.delete(entry.value)
    }
    return false
  }

  /**
   * Steps go on a 0 ms timer, not `setImmediate`: an unref'd immediate does not wake an idle loop
   * (it ran one step per request or interval tick, so an idle server kept its ended counters for
   * minutes), while an unref'd timer does, and still never keeps the process alive.
   */
  #start(): void {
    if (this.#turn !== undefined) return
    const turn = () => {
      this.#turn = this.step() ? undefined : setTimeout(turn, 0).unref()
    }
    turn()
  }

  close(): void {
    clearInterval(this.#sweeper)
    clearTimeout(this.#turn)
    this.#turn = undefined
    this.#sweepTables = undefined
  }
}
