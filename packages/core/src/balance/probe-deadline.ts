/**
 * The deadline of one health probe or load-report scrape: a signal that aborts when `ms` have
 * passed or when `closing` aborts, whichever comes first. `clear()` it once the call is over.
 *
 * Not `AbortSignal.any` over `closing` and the signal from AbortSignal's static timeout: on
 * Node 20 that timeout signal is held only weakly, so after a garbage collection it can be gone
 * and never fire, and a backend that trickles its answer then holds the probe (and every later
 * round) forever. Here the timer holds the controller, so the deadline fires whatever is
 * collected.
 */
export class ProbeDeadline {
  readonly #controller = new AbortController()
  readonly #timer: NodeJS.Timeout
  readonly #closing: AbortSignal
  readonly #onClosing: () => void

  constructor(ms: number, closing: AbortSignal) {
    const controller = this.#controller
    this.#closing = closing
    this.#onClosing = () => controller.abort(closing.reason)
    // The same reason AbortSignal's static timeout gives, so a failure reads as a timeout.
    this.#timer = setTimeout(
      () => controller.abort(new DOMException(`timed out after ${ms} ms`, 'TimeoutError')),
      ms,
    )
    // A probe's socket keeps the process up while it runs; the deadline alone must not.
    this.#timer.unref()
    if (closing.aborted) controller.abort(closing.reason)
    else closing.addEventListener('abort', this.#onClosing, { once: true })
  }

  get signal(): AbortSignal {
    return this.#controller.signal
  }

  clear(): void {
    clearTimeout(this.#timer)
    this.#closing.removeEventListener('abort', this.#onClosing)
  }
}
