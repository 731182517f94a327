/**
 * How much earlier than the caller gives up a Redis script refuses to count a call. Both clocks
 * are read in whole milliseconds and the offset between them is estimated, so a deadline sent as
 * "when I give up" could pass a call that reaches the script just after the caller gave up and
 * answered from its fallback, and count the request twice; 2 ms covers both roundings.
 */
export const SERVER_DEADLINE_MARGIN_MS = 2

/** One call being watched: `settle()` is true for whoever gets there first, the reply or the timeout. */
export interface WatchedCall {
  settle(): boolean
}

class Call implements WatchedCall {
  readonly deadline: number
  readonly onTimeout: (error: Error) => void
  done = false

  constructor(deadline: number, onTimeout: (error: Error) => void) {
    this.deadline = deadline
    this.onTimeout = onTimeout
  }

  settle(): boolean {
    if (this.done) return false
    this.done = true
    return true
  }
}

/**
 * Gives up on calls still unanswered `timeoutMs` after they started, with one timer for all of
 * them instead of a timer per call: a timer costs more than the rest of a Redis store's own work
 * per request. Every call has the same timeout, so calls start in deadline order and a queue in
 * start order is a queue in deadline order. Answered calls leave the queue when they reach its
 * head; the timer is only armed for a call that is still waiting, so under steady traffic it fires
 * about once per `timeoutMs`, not once per call.
 */
export class CallDeadlines {
  readonly #timeoutMs: number
  readonly #makeError: () => Error
  readonly #now: () => number
  /** Calls from `#head` to `#tail`; slots before `#head` are emptied, so nothing done is kept alive. */
  #queue: (Call | undefined)[] = []
  #head = 0
  #tail = 0
  #timer: NodeJS.Timeout | undefined

  constructor(timeoutMs: number, makeError: () => Error, now: () => number = Date.now) {
    this.#timeoutMs = timeoutMs
    this.#makeError = makeError
    this.#now = now
  }

  /**
   * Starts watching a call; `onTimeout` gets the error if the call is still unsettled at its
   * deadline. `now` is the caller's reading of the clock, when it has one.
   */
  watch(onTimeout: (error: Error) => void, now: number = this.#now()): WatchedCall {
    const call = new Call(now + this.#timeoutMs, onTimeout)
    this.#dropAnswered()
    this.#queue[this.#tail++] = call
    if (this.#timer === undefined) this.#arm(this.#timeoutMs)
    return call
  }

  /** Calls not yet taken off the queue (answered ones leave it lazily). */
  get queued(): number {
    return this.#tail - this.#head
  }

  /**
   * Takes answered calls off the front, so the queue holds about the calls in flight. An empty
   * queue starts again at slot 0 of the same array: shrinking it and growing it again on the next
   * call cost more than the rest of the bookkeeping.
   */
  #dropAnswered(): void {
    const queue = this.#queue
    const tail = this.#tail
    let head = this.#head
    while (head < tail && queue[head]!.done) queue[head++] = undefined
    if (head === tail) {
      head = 0
      this.#tail = 0
      // An array grown by a burst is not kept at that size for good.
      if (queue.length > 1024) this.#queue = []
    } else if (head > 1024 && head * 2 > tail) {
      this.#queue = queue.slice(head, tail)
      this.#tail = tail - head
      head = 0
    }
    this.#head = head
  }

  #arm(delayMs: number): void {
    this.#timer = setTimeout(() => this.#expire(), Math.max(0, delayMs))
    // A call in flight must not keep a process alive that has nothing else to do.
    this.#timer.unref()
  }

  #expire(): void {
    this.#timer = undefined
    const now = this.#now()
    // The queue's own fields, not locals: a timeout's callback may start another call (watch).
    while (this.#head < this.#tail) {
      const call = this.#queue[this.#head]!
      const expired = !call.done
      if (expired && call.deadline > now) break
      call.done = true
      this.#queue[this.#head++] = undefined
      if (expired) call.onTimeout(this.#makeError())
    }
    this.#dropAnswered()
    if (this.queued > 0 && this.#timer === undefined) this.#arm(this.#queue[this.#head]!.deadline - now)
  }

  /** Stops the timer; calls still waiting are left to their own replies. */
  close(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    this.#timer = undefined
  }
}
