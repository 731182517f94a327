import { CallDeadlines, SERVER_DEADLINE_MARGIN_MS } from './call-deadlines.js'
import { isNoScript, type RedisClientLike, type ScriptRunner, scriptRunnerFor } from './redis-client.js'
import { REFUND_SCRIPT, REFUND_SCRIPT_SHA } from './redis-refund-script.js'
import { replyIntegers } from './redis-reply.js'
import { HIT_SCRIPT, HIT_SCRIPT_SHA } from './redis-script.js'
import { STRATEGY_CODE, STRATEGY_SCRIPT, STRATEGY_SCRIPT_SHA } from './redis-strategy-script.js'
import type {
  HitCallback,
  HitErrorCallback,
  HitResult,
  LimitStore,
  LimitStrategy,
  WindowSpec,
} from './store.js'

/** Raised instead of waiting on a Redis that is down, slow or still connecting. */
export class StoreUnavailableError extends Error {
  override readonly name = 'StoreUnavailableError'
}

export interface RedisStoreOptions {
  /** A connected `ioredis` or `redis` client; the store never closes it. */
  client: RedisClientLike
  /** Give up on a call after this long and let the caller fall back, in ms. */
  timeoutMs?: number
  /** Prepended to every key. Default `tollgate:`. */
  prefix?: string
  /**
   * For tests only: the time (ms) the scripts count by instead of the server's clock, so a test
   * can follow a schedule. Keys still expire on the server's clock.
   */
  now?: () => number
}

/**
 * Fixed-window counters in Redis: every window of a request is checked and charged by one Lua
 * script, so one round trip per request and no partial charge. Keys are
 * `<prefix>{<client key>}:<window id>`: the braces put every key of one client in one Redis Cluster
 * hash slot, so the script is valid on a cluster. A client key with `}` or `%` in it is
 * percent-escaped there (`}` would end the hash tag early and spread one request's keys over slots).
 *
 * Each call carries a deadline, `timeoutMs` from now on the server's clock (estimated from the
 * server time every reply carries): a call that reaches the script after it is refused uncounted,
 * because by then the request has been answered by the fallback.
 */
export class RedisStore implements LimitStore {
  readonly strategies: readonly LimitStrategy[] = ['fixed-window', 'moving-window', 'sliding-window-counter']
  readonly #runner: ScriptRunner
  readonly #now: (() => number) | undefined
  readonly #timeoutMs: number
  readonly #deadlines: CallDeadlines
  readonly #prefix: string
  /** Server clock minus ours, as of the last reply; never above the real offset (see #learnClock). */
  #clockOffsetMs = 0
  readonly #preparedWindows = new Map<readonly WindowSpec[], PreparedWindows>()
  /** Deadlines go out as `base + offset` (see HIT_SCRIPT); the base is in each prepared tail. */
  #deadlineBase = Date.now()
  #deadlineOffset = Number.NaN
  #deadlineText = ''
  /** When (our clock) a call last asked for the server's time. */
  #clockAskedAt = Number.NEGATIVE_INFINITY
  /** Client keys' Redis keys held in all the prepared windows (see `#keysFor`). */
  #keysKept = 0
  /** The integers of the reply being read; parsing is synchronous, so one array serves every call. */
  readonly #values: number[] = []

  constructor(options: RedisStoreOptions) {
    this.#runner = scriptRunnerFor(options.client)
    this.#timeoutMs = options.timeoutMs ?? 500
    const timeoutMs = this.#timeoutMs
    this.#deadlines = new CallDeadlines(
      timeoutMs,
      () => new StoreUnavailableError(`Redis did not answer within ${timeoutMs} ms`),
    )
    this.#prefix = options.prefix ?? 'tollgate:'
    this.#now = options.now
  }

  hit(key: string, windows: readonly WindowSpec[], cost: number): Promise<HitResult> {
    return new Promise<HitResult>((resolve, reject) => this.hitThen(key, windows, cost, resolve, reject))
  }

  hitThen(
    key: string,
    windows: readonly WindowSpec[],
    cost: number,
    onResult: HitCallback,
    onError: HitErrorCallback,
  ): void {
    if (!this.#runner.ready()) return onError(new StoreUnavailableError('Redis client is not ready'))
    if (this.#now !== undefined) return this.#hitStrategies(key, windows, cost, onResult, onError)
    let prepared = this.#prepared(windows)
    if (!prepared.fixed) return this.#hitStrategies(key, windows, cost, onResult, onError)
    const now = Date.now()
    const offset = this.#offsetText(now)
    // Moving the deadline's base (every 12 days) dropped the tails that carry the old one.
    if (prepared.base !== this.#deadlineBase) prepared = this.#prepared(windows)
    const n = windows.length
    const keys = this.#keysFor(key, windows, prepared)
    // The server's time, for the clock offset, once a second is plenty; the answer is shorter without.
    const askClock = now - this.#clockAskedAt >= CLOCK_REFRESH_MS
    if (askClock) this.#clockAskedAt = now
    const args = [`${cost} ${offset}${askClock ? ' 1' : ' 0'}${prepared.limitsText}`]
    this.#run(HIT_SCRIPT_SHA, HIT_SCRIPT, keys, args, n, now, onResult, onError)
  }

  /**
   * What a call for these windows needs beyond the client key, worked out once per windows array
   * (a limiter passes the same array on every call). Bounded, for callers that build a new array
   * each time.
   */
  #prepared(windows: readonly WindowSpec[]): PreparedWindows {
    let prepared = this.#preparedWindows.get(windows)
    if (prepared === undefined) {
      if (this.#preparedWindows.size >= 256) this.#dropPrepared()
      prepared = {
        fixed: allFixed(windows),
        base: this.#deadlineBase,
        limitsText: ` ${this.#deadlineBase}${windows.map((w) => ` ${w.amount} ${w.windowMs}`).join('')}`,
        keys: new Map(),
      }
      this.#preparedWindows.set(windows, prepared)
    }
    return prepared
  }

  /**
   * The Redis keys of a client's counters in these windows. Kept for clients seen recently: built
   * anew, a key is a string of several pieces that the client then copies into one before it can
   * measure and send it, and that took more instructions than the rest of the store's work per
   * request. At most `KEYS_KEPT` clients' keys are kept in all; past that the store starts over.
   */
  #keysFor(key: string, windows: readonly WindowSpec[], prepared = this.#prepared(windows)): string[] {
    let keys = prepared.keys.get(key)
    if (keys === undefined) {
      const head = `${this.#prefix}{${hashTagSafe(key)}}:`
      keys = windows.map((w) => head + w.id)
      if (++this.#keysKept > KEYS_KEPT) {
        for (const other of this.#preparedWindows.values()) other.keys.clear()
        this.#keysKept = 1
      }
      prepared.keys.set(key, keys)
    }
    return keys
  }

  /** Forgets every prepared tail, and with them the keys they kept. */
  #dropPrepared(): void {
    this.#preparedWindows.clear()
    this.#keysKept = 0
  }

  /**
   * The deadline of a call starting `now`, as its offset from `#deadlineBase` in text: the same
   * for every call within a millisecond. Past 2^30 ms (12 days) the base moves up, which also
   * drops the prepared tails that carry the old one.
   */
  #offsetText(now: number): string {
    let offset = now + this.#serverTimeout() - this.#deadlineBase
    if (offset !== this.#deadlineOffset) {
      if (offset > 2 ** 30) {
        this.#deadlineBase = now
        this.#dropPrepared()
        offset = this.#serverTimeout()
      }
      this.#deadlineOffset = offset
      this.#deadlineText = String(offset)
    }
    return this.#deadlineText
  }

  /** What to add to our clock's now for a call's deadline on the server's clock. */
  #serverTimeout(): number {
    return this.#clockOffsetMs + this.#timeoutMs - SERVER_DEADLINE_MARGIN_MS
  }

  /** The strategy script: every window with its strategy code, and the test clock if there is one. */
  #hitStrategies(
    key: string,
    windows: readonly WindowSpec[],
    cost: number,
    onResult: HitCallback,
    onError: HitErrorCallback,
  ): void {
    const n = windows.length
    const keys = this.#keysFor(key, windows)
    const args = new Array<string>(3 * n + 3)
    const testNow = this.#now?.()
    const now = Date.now()
    args[0] = String(cost)
    // A test clock is the server's clock for the script: no offset to add.
    args[1] = String(
      testNow === undefined
        ? now + this.#serverTimeout()
        : testNow + this.#timeoutMs - SERVER_DEADLINE_MARGIN_MS,
    )
    args[2] = testNow === undefined ? '' : String(testNow)
    for (let i = 0; i < n; i++) {
      const w = windows[i]!
      args[3 * i + 3] = String(w.amount)
      args[3 * i + 4] = String(w.windowMs)
      args[3 * i + 5] = STRATEGY_CODE[w.strategy ?? 'fixed-window']
    }
    this.#run(STRATEGY_SCRIPT_SHA, STRATEGY_SCRIPT, keys, args, n, now, onResult, onError)
  }

  #run(
    sha: string,
    script: string,
    keys: string[],
    args: string[],
    n: number,
    now: number,
    onResult: HitCallback,
    onError: HitErrorCallback,
  ): void {
    const call = this.#deadlines.watch(onError, now)
    const answered = (reply: unknown) => {
      if (!call.settle()) return
      let result: HitResult
      try {
        result = this.#parseReply(reply, n)
      } catch (error) {
        onError(error)
        return
      }
      onResult(result)
    }
    const failed = (error: unknown) => {
      if (call.settle()) onError(error)
    }
    // NOSCRIPT is handled here rather than by the runner, so a call costs one promise less.
    this.#runner.evalsha(sha, keys, args).then(answered, (error: unknown) => {
      if (isNoScript(error)) this.#runner.eval(script, keys, args).then(answered, failed)
      else failed(error)
    })
  }

  /** Takes `cost` back from every window's live counter in one script call (`deductWhen`). */
  refund(key: string, windows: readonly WindowSpec[], cost: number): Promise<void> {
    if (!this.#runner.ready()) return Promise.reject(new StoreUnavailableError('Redis client is not ready'))
    const keys = this.#keysFor(key, windows)
    return new Promise<void>((resolve, reject) => {
      const call = this.#deadlines.watch(reject)
      this.#runner.run(REFUND_SCRIPT_SHA, REFUND_SCRIPT, keys, [String(cost)]).then(
        () => {
          if (call.settle()) resolve()
        },
        (error: unknown) => {
          if (call.settle()) reject(error)
        },
      )
    })
  }

  /**
   * The server time in a reply was read before the reply travelled here, so server time minus our
   * time now is at most the real offset: the deadline errs early (a call refused that could still
   * have counted, answered by the fallback), never late.
   */
  #learnClock(serverNow: unknown): void {
    const offset = Number(serverNow) - Date.now()
    if (Number.isFinite(offset)) this.#clockOffsetMs = offset
  }

  #parseReply(reply: unknown, n: number): HitResult {
    const values = this.#values
    const count = replyIntegers(reply, values)
    if (count === 2 && values[0] === -1) {
      this.#learnClock(values[1])
      throw new StoreUnavailableError('Redis ran the call after its deadline; it was not counted')
    }
    // The server's time is last, when the call asked for it.
    if (count === 2 * n + 2) this.#learnClock(values[2 * n + 1])
    else if (count !== 2 * n + 1) {
      throw new TypeError(`Unexpected reply from the rate-limit script (${count} numbers)`)
    }
    if (n === 1) return { allowed: values[0] === 1, used: [values[1]!], resetMs: [values[2]!] }
    const used = new Array<number>(n)
    const resetMs = new Array<number>(n)
    for (let i = 0; i < n; i++) {
      used[i] = values[2 * i + 1]!
      resetMs[i] = values[2 * i + 2]!
    }
    return { allowed: values[0] === 1, used, resetMs }
  }

  close(): void {
    this.#deadlines.close()
  }
}

interface PreparedWindows {
  /** Every window counts by fixed window, so the plain script serves them. */
  readonly fixed: boolean
  /** The deadline base `limitsText` carries. */
  readonly base: number
  /** ` base amount_1 window_1 ... amount_n window_n`, the constant tail of the script's argument. */
  readonly limitsText: string
  /** Redis keys by client key, for clients seen recently. */
  readonly keys: Map<string, string[]>
}

/** Client keys whose Redis keys a store keeps, over all its routes (about 200 bytes each). */
const KEYS_KEPT = 4096

/** How often a call asks for the server's time, to keep the clock offset fresh. */
const CLOCK_REFRESH_MS = 1000

function allFixed(windows: readonly WindowSpec[]): boolean {
  for (let i = 0; i < windows.length; i++) {
    const strategy = windows[i]!.strategy
    if (strategy !== undefined && strategy !== 'fixed-window') return false
  }
  return true
}

/** `key`, or its percent-escaped form when `}` (or the escape character) would break the hash tag. */
export function hashTagSafe(key: string): string {
  // One pass over the characters: cheaper than two indexOf calls on a key as short as an address.
  for (let i = 0; i < key.length; i++) {
    const code = key.charCodeAt(i)
    if (code === 0x7d || code === 0x25) return key.replaceAll('%', '%25').replaceAll('}', '%7D')
  }
  return key
}

// Errors a Redis server answers while it cannot serve for now: the fallback covers them, like a
// connection that is down.
const TRANSIENT_REPLY = /^(LOADING|BUSY|CLUSTERDOWN|TRYAGAIN|MASTERDOWN|READONLY|NOREPLICAS|MOVED|ASK)\b/

/**
 * Whether `error` means Redis cannot answer now (down, unreachable, slow, failing over) rather
 * than that the call itself is wrong. A wrong call (a script error such as CROSSSLOT or WRONGTYPE,
 * an unexpected reply) is a bug or a key clash to report, not an outage to ride out: treating it
 * as one would fall back on every request and log the outage over and over.
 */
export function isRedisOutage(error: unknown): boolean {
  if (error instanceof StoreUnavailableError) return true
  if (error instanceof TypeError) return false
  if (!(error instanceof Error)) return true
  const kind = (error as { constructor?: { name?: string } }).constructor?.name
  const isReply =
    error.name === 'ReplyError' ||
    kind === 'ReplyError' ||
    kind === 'ErrorReply' ||
    kind === 'SimpleError' ||
    kind === 'BlobError'
  return !isReply || TRANSIENT_REPLY.test(error.message)
}
