import { SERVER_DEADLINE_MARGIN_MS } from '../call-deadlines.js'
import type { Logger } from '../insured-store.js'
import { type RedisClientLike, type ScriptRunner, scriptRunnerFor } from '../redis-client.js'
import { hashTagSafe, isRedisOutage, StoreUnavailableError } from '../redis-store.js'
import type { WindowSpec } from '../store.js'
import { RESERVE_SCRIPT, RESERVE_SCRIPT_SHA, SETTLE_SCRIPT, SETTLE_SCRIPT_SHA } from './redis-token-script.js'
import type { ReserveResult, TokenStore } from './token-store.js'

export interface RedisTokenStoreOptions {
  client: RedisClientLike
  timeoutMs: number
  prefix: string
}

/**
 * Token counters in Redis, keyed like the request counters (`<prefix>{<client key>}:<window id>`,
 * one Cluster hash slot per client). A reservation is one script call, with the same deadline
 * rule as `RedisStore.hit`: a call Redis runs after the caller gave up touches nothing.
 */
export class RedisTokenStore implements TokenStore {
  readonly #runner: ScriptRunner
  readonly #timeoutMs: number
  readonly #prefix: string
  #clockOffsetMs = 0

  constructor(options: RedisTokenStoreOptions) {
    this.#runner = scriptRunnerFor(options.client)
    this.#timeoutMs = options.timeoutMs
    this.#prefix = options.prefix
  }

  /** The counters, then what each owes past its window (same hash slot). */
  #keys(key: string, windows: readonly WindowSpec[]): string[] {
    const head = `${this.#prefix}{${hashTagSafe(key)}}:`
    const keys = windows.map((w) => head + w.id)
    for (const w of windows) keys.push(`${head + w.id}:over`)
    return keys
  }

  #run(sha: string, script: string, keys: string[], args: string[]): Promise<unknown> {
    if (!this.#runner.ready()) return Promise.reject(new StoreUnavailableError('Redis client is not ready'))
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new StoreUnavailableError(`Redis did not answer within ${this.#timeoutMs} ms`)),
        this.#timeoutMs,
      )
      this.#runner.run(sha, script, keys, args).then(
        (reply) => {
          clearTimeout(timer)
          resolve(reply)
        },
        (error: unknown) => {
          clearTimeout(timer)
          reject(error)
        },
      )
    })
  }

  async reserve(key: string, windows: readonly WindowSpec[], want: number): Promise<ReserveResult> {
    const n = windows.length
    const deadline = Date.now() + this.#clockOffsetMs + this.#timeoutMs - SERVER_DEADLINE_MARGIN_MS
    const args = [String(want), String(deadline)]
    for (const w of windows) args.push(String(w.amount), String(w.windowMs))
    const reply = await this.#run(RESERVE_SCRIPT_SHA, RESERVE_SCRIPT, this.#keys(key, windows), args)
    if (!Array.isArray(reply)) throw new TypeError('Unexpected reply from the token script')
    const serverNow = Number(reply[reply.length - 1])
    if (Number.isFinite(serverNow)) this.#clockOffsetMs = serverNow - Date.now()
    if (reply.length === 2 && Number(reply[0]) === -1) {
      throw new StoreUnavailableError('Redis ran the call after its deadline; it was not counted')
    }
    if (reply.length !== 2 * n + 3) throw new TypeError('Unexpected reply from the token script')
    const used = new Array<number>(n)
    const resetMs = new Array<number>(n)
    for (let i = 0; i < n; i++) {
      used[i] = Number(reply[2 * i + 2])
      resetMs[i] = Number(reply[2 * i + 3])
    }
    return { allowed: Number(reply[0]) === 1, reserved: Number(reply[1]), used, resetMs }
  }

  async settle(key: string, windows: readonly WindowSpec[], delta: number): Promise<void> {
    if (delta === 0) return
    const args = [String(delta)]
    for (const w of windows) args.push(String(w.amount), String(w.windowMs))
    await this.#run(SETTLE_SCRIPT_SHA, SETTLE_SCRIPT, this.#keys(key, windows), args)
  }

  close(): void {}
}

const PROBE_MS = 500

/**
 * The token counterpart of `InsuredStore`: while Redis cannot answer, reservations are made in
 * this process (or all allowed / all refused, per `onError`), and a reservation is settled in the
 * store that made it. One warning when an outage starts, one when it ends; while down, one
 * reservation per half second probes Redis.
 */
export class InsuredTokenStore implements TokenStore {
  readonly #primary: TokenStore
  readonly #insurance: TokenStore
  readonly #mode: 'insurance' | 'allow' | 'deny'
  readonly #logger: Logger
  #down = false
  #probeAt = 0

  constructor(
    primary: TokenStore,
    insurance: TokenStore,
    mode: 'insurance' | 'allow' | 'deny',
    logger: Logger,
  ) {
    this.#primary = primary
    this.#insurance = insurance
    this.#mode = mode
    this.#logger = logger
  }

  reserve(key: string, windows: readonly WindowSpec[], want: number): ReserveResult | Promise<ReserveResult> {
    if (this.#down && Date.now() < this.#probeAt) return this.#fallback(key, windows, want)
    if (this.#down) this.#probeAt = Date.now() + PROBE_MS
    let pending: ReserveResult | Promise<ReserveResult>
    try {
      pending = this.#primary.reserve(key, windows, want)
    } catch (error) {
      return this.#failed(error, key, windows, want)
    }
    return Promise.resolve(pending).then(
      (result) => {
        if (this.#down) {
          this.#down = false
          ;(this.#logger.info ?? this.#logger.warn).call(
            this.#logger,
            'tollgate: token store is back; shared counting resumed',
          )
        }
        return result
      },
      (error: unknown) => this.#failed(error, key, windows, want),
    )
  }

  #failed(
    error: unknown,
    key: string,
    windows: readonly WindowSpec[],
    want: number,
  ): ReserveResult | Promise<ReserveResult> {
    if (!isRedisOutage(error)) throw error
    if (!this.#down) {
      this.#down = true
      this.#probeAt = Date.now() + PROBE_MS
      const reason = error instanceof Error ? error.message : String(error)
      this.#logger.warn(
        `tollgate: token store unavailable (${reason}); using the ${this.#mode} fallback until it answers again`,
      )
    }
    return this.#fallback(key, windows, want)
  }

  #fallback(
    key: string,
    windows: readonly WindowSpec[],
    want: number,
  ): ReserveResult | Promise<ReserveResult> {
    if (this.#mode === 'insurance') {
      const result = this.#insurance.reserve(key, windows, want)
      return result instanceof Promise
        ? result.then((r) => ({ ...r, fallback: true }))
        : { ...result, fallback: true }
    }
    const allowed = this.#mode === 'allow'
    return {
      allowed,
      reserved: allowed ? want : 0,
      used: windows.map((w) => (allowed ? 0 : w.amount)),
      resetMs: windows.map((w) => (allowed ? w.windowMs : 1000)),
      fallback: true,
    }
  }

  settle(
    key: string,
    windows: readonly WindowSpec[],
    delta: number,
    fallback?: boolean,
  ): void | Promise<void> {
    if (fallback === true) {
      if (this.#mode === 'insurance') return this.#insurance.settle(key, windows, delta)
      return
    }
    // A settle that cannot reach Redis is lost rather than moved: the reservation lives there.
    return Promise.resolve(this.#primary.settle(key, windows, delta)).catch(() => {})
  }

  async close(): Promise<void> {
    await this.#primary.close()
    await this.#insurance.close()
  }
}
