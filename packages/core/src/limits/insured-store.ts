import type { HitResult, LimitStore, WindowSpec } from './store.js'

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
}

/**
 * Keeps answering while the primary store is down: falls back per `mode`, logs
 * the outage once when it starts and once when it ends, never per request.
 */
export class InsuredStore implements LimitStore {
  readonly #primary: LimitStore
  readonly #insurance: LimitStore
  readonly #mode: StoreErrorMode
  readonly #logger: Logger
  #down = false

  constructor(options: InsuredStoreOptions) {
    this.#primary = options.primary
    this.#insurance = options.insurance
    this.#mode = options.mode
    this.#logger = options.logger
  }

  /** Whether the last call to the primary store failed. */
  get degraded(): boolean {
    return this.#down
  }

  hit(key: string, windows: readonly WindowSpec[], cost: number): Promise<HitResult> | HitResult {
    let pending: Promise<HitResult> | HitResult
    try {
      pending = this.#primary.hit(key, windows, cost)
    } catch (error) {
      return this.#fallback(key, windows, cost, error)
    }
    if (!(pending instanceof Promise)) return this.#recovered(pending)
    return pending.then(
      (result) => this.#recovered(result),
      (error: unknown) => this.#fallback(key, windows, cost, error),
    )
  }

  #recovered(result: HitResult): HitResult {
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
    switch (this.#mode) {
      case 'insurance':
        return this.#insurance.hit(key, windows, cost)
      case 'allow':
        return passAll(windows)
      case 'deny':
        return failAll(windows)
    }
  }

  async close(): Promise<void> {
    await this.#primary.close()
    await this.#insurance.close()
  }
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
