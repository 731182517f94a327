import type {
  HitCallback,
  HitErrorCallback,
  HitResult,
  LimitStore,
  LimitStrategy,
  WindowSpec,
} from './store.js'

/** What to do with a request while the shared store (Redis) cannot answer. */
export type StoreErrorMode = 'insurance' | 'allow' | 'deny'

export interface Logger {
  warn(message: string): void
  info?(message: string): void
}

export interface InsuredStoreOptions {
  primary: LimitStore
  /** Used while the primary fails; each process then enforces the limits on its own. */
  insurance: LimitStore
  mode: StoreErrorMode
  logger: Logger
  /**
   * Whether an error of the primary means it is down (fall back) rather than that the call is
   * wrong (rethrown to the caller). Default: every error is an outage.
   */
  isOutage?: (error: unknown) => boolean
  /** Clock, for tests. */
  now?: () => number
}

/** The first retry of a primary that went down; doubled after each failed probe, up to the max. */
export const PROBE_FIRST_MS = 500
export const PROBE_MAX_MS = 5_000

/**
 * Keeps answering while the primary store is down: falls back per `mode`, logs
 * the outage once when it starts and once when it ends, never per request.
 *
 * While the primary is down, requests do not wait on it: one request at a time probes it, first
 * `PROBE_FIRST_MS` after the failure, then backing off to every `PROBE_MAX_MS`; every other
 * request goes straight to the fallback. A probe that succeeds ends the outage.
 */
export class InsuredStore implements LimitStore {
  readonly #primary: LimitStore
  readonly #insurance: LimitStore
  readonly #mode: StoreErrorMode
  readonly #logger: Logger
  readonly #isOutage: (error: unknown) => boolean
  readonly #now: () => number
  #down = false
  #probing = false
  #probeAt = 0
  #backoffMs = PROBE_FIRST_MS

  /** Present when the primary answers with callbacks (Redis): see `LimitStore.hitThen`. */
  readonly hitThen: LimitStore['hitThen']

  constructor(options: InsuredStoreOptions) {
    this.hitThen = options.primary.hitThen === undefined ? undefined : this.#hitThen
    this.#primary = options.primary
    this.#insurance = options.insurance
    this.#mode = options.mode
    this.#logger = options.logger
    this.#isOutage = options.isOutage ?? (() => true)
    this.#now = options.now ?? Date.now
  }

  /** What both stores can count by: a strategy is only kept through an outage if the insurance has it. */
  get strategies(): readonly LimitStrategy[] {
    const insurance = this.#insurance.strategies ?? ['fixed-window']
    return (this.#primary.strategies ?? ['fixed-window']).filter((s) => insurance.includes(s))
  }

  /** Whether the last call to the primary store failed. */
  get degraded(): boolean {
    return this.#down
  }

  /**
   * Whether a call may go to the primary now, and if so whether it is the probe of a primary that
   * is down (true) or an ordinary call (false); undefined: answer from the fallback.
   */
  #admit(): boolean | undefined {
    if (!this.#down) return false
    if (this.#probing || this.#now() < this.#probeAt) return undefined
    this.#probing = true
    return true
  }

  hit(key: string, windows: readonly WindowSpec[], cost: number): Promise<HitResult> | HitResult {
    const probe = this.#admit()
    if (probe === undefined) return this.#serveDown(key, windows, cost)
    let pending: Promise<HitResult> | HitResult
    try {
      pending = this.#primary.hit(key, windows, cost)
    } catch (error) {
      return this.#failed(key, windows, cost, error, probe)
    }
    if (!(pending instanceof Promise)) return this.#recovered(pending, probe)
    return pending.then(
      (result) => this.#recovered(result, probe),
      (error: unknown) => this.#failed(key, windows, cost, error, probe),
    )
  }

  /** `hit` in callbacks, for a primary with `hitThen`; the same outage rules. */
  #hitThen = (
    key: string,
    windows: readonly WindowSpec[],
    cost: number,
    onResult: HitCallback,
    onError: HitErrorCallback,
  ): void => {
    const probe = this.#admit()
    if (probe === undefined) return settle(() => this.#serveDown(key, windows, cost), onResult, onError)
    const failed = (error: unknown) =>
      settle(() => this.#failed(key, windows, cost, error, probe), onResult, onError)
    try {
      this.#primary.hitThen!(key, windows, cost, (result) => onResult(this.#recovered(result, probe)), failed)
    } catch (error) {
      failed(error)
    }
  }

  #failed(
    key: string,
    windows: readonly WindowSpec[],
    cost: number,
    error: unknown,
    probe: boolean,
  ): HitResult | Promise<HitResult> {
    if (probe) this.#probing = false
    if (!this.#isOutage(error)) {
      // The primary answered: a wrong call says nothing about whether it is up.
      if (probe) this.#probeAt = 0
      throw error
    }
    if (probe) {
      this.#backoffMs = Math.min(this.#backoffMs * 2, PROBE_MAX_MS)
    } else if (!this.#down) {
      this.#backoffMs = PROBE_FIRST_MS
    }
    if (probe || !this.#down) this.#probeAt = this.#now() + this.#backoffMs
    return this.#fallback(key, windows, cost, error)
  }

  #recovered(result: HitResult, probe: boolean): HitResult {
    if (probe) this.#probing = false
    if (this.#down) {
      this.#down = false
      ;(this.#logger.info ?? this.#logger.warn).call(
        this.#logger,
        'tollgate: rate-limit store is back; shared counting resumed',
      )
    }
    return result
  }

  #fallback(
    key: string,
    windows: readonly WindowSpec[],
    cost: number,
    error: unknown,
  ): HitResult | Promise<HitResult> {
    if (!this.#down) {
      this.#down = true
      const reason = error instanceof Error ? error.message : String(error)
      this.#logger.warn(
        `tollgate: rate-limit store unavailable (${reason}); ${FALLBACK_DESCRIPTION[this.#mode]} until it answers again`,
      )
    }
    return this.#serveDown(key, windows, cost)
  }

  #serveDown(key: string, windows: readonly WindowSpec[], cost: number): HitResult | Promise<HitResult> {
    switch (this.#mode) {
      case 'insurance':
        return this.#insurance.hit(key, windows, cost)
      case 'allow':
        return passAll(windows)
      case 'deny':
        return failAll(windows)
    }
  }

  /**
   * Refunds where requests are counted now: the insurance while the primary is down, else the
   * primary. A refund the primary cannot take leaves the charge in place (stricter, never looser).
   */
  refund(key: string, windows: readonly WindowSpec[], cost: number): void | Promise<void> {
    if (!this.#down) return this.#primary.refund?.(key, windows, cost)
    if (this.#mode === 'insurance') return this.#insurance.refund?.(key, windows, cost)
  }

  async close(): Promise<void> {
    await this.#primary.close()
    await this.#insurance.close()
  }
}

/** Hands what `answer` gives (now or later) to the callbacks; a throw goes to `onError`. */
function settle(
  answer: () => HitResult | Promise<HitResult>,
  onResult: HitCallback,
  onError: HitErrorCallback,
): void {
  let result: HitResult | Promise<HitResult>
  try {
    result = answer()
  } catch (error) {
    onError(error)
    return
  }
  if (result instanceof Promise) result.then(onResult, onError)
  else onResult(result)
}

const FALLBACK_DESCRIPTION: Record<StoreErrorMode, string> = {
  insurance: 'counting in this process only',
  allow: 'letting every request through',
  deny: 'rejecting every request',
}

function passAll(windows: readonly WindowSpec[]): HitResult {
  return { allowed: true, used: windows.map(() => 0), resetMs: windows.map((w) => w.windowMs) }
}

function failAll(windows: readonly WindowSpec[]): HitResult {
  return { allowed: false, used: windows.map((w) => w.amount), resetMs: windows.map(() => 1000) }
}
