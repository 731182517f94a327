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
  #queue: Call[] = []
  #head = 0
  #timer: NodeJS.Timeout | undefined

  constructor(timeoutMs: number, makeError: () => Error, now: () => number = Date.now) {
    this.#timeoutMs = timeoutMs
    this.#makeError = makeError
    this.#now = now
  }

  /** Starts watching a call; `onTimeout` gets the error if the call is still unsettled at its deadline. */
  watch(onTimeout: (error: Error) => void): WatchedCall {
    const call = new Call(this.#now() + this.#timeoutMs, onTimeout)
    this.#dropAnswered()
    this.#queue.push(call)
    if (this.#timer === undefined) this.#arm(this.#timeoutMs)
    return call
  }

  /** Calls not yet taken off the queue (answered ones leave it lazily). */
  get queued(): number {
    return this.#queue.length - this.#head
  }

  /** Takes answered calls off the front, so the queue holds about the calls in flight. */
  #dropAnswered(): void {
    const queue = this.#queue
    let head = this.#head
    while (head < queue.length && queue[head]!.done) head++
    if (head === queue.length) {
      if (head > 0) queue.length = 0
      head = 0
    } else if (head > 1024 && head * 2 > queue.length) {
      this.#queue = queue.slice(head)
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
    const queue = this.#queue
    let head = this.#head
    while (head < queue.length) {
      const call = queue[head]!
      if (call.done) {
        head++
        continue
      }
      if (call.deadline > now) break
      call.done = true
      head++
      call.onTimeout(this.#makeError())
    }
    this.#head = head
    this.#dropAnswered()
    if (this.queued > 0) this.#arm(this.#queue[this.#head]!.deadline - now)
  }

  /** Stops the timer; calls still waiting are left to their own replies. */
  close(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    this.#timer = undefined
  }
}
