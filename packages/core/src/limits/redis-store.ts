import { type RedisClientLike, type ScriptRunner, scriptRunnerFor } from './redis-client.js'
import { HIT_SCRIPT, HIT_SCRIPT_SHA } from './redis-script.js'
import type { HitResult, LimitStore, WindowSpec } from './store.js'

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
}

/**
 * Fixed-window counters in Redis: every window of a request is checked and
 * charged by one Lua script, so one round trip per request and no partial
 * charge. Keys are `<prefix>{<client key>}:<window id>`: the braces put every key
 * of one client in one Redis Cluster hash slot, so the script is valid on a cluster.
 */
export class RedisStore implements LimitStore {
  readonly #runner: ScriptRunner
  readonly #timeoutMs: number
  readonly #prefix: string

  constructor(options: RedisStoreOptions) {
    this.#runner = scriptRunnerFor(options.client)
    this.#timeoutMs = options.timeoutMs ?? 500
    this.#prefix = options.prefix ?? 'tollgate:'
  }

  hit(key: string, windows: readonly WindowSpec[], cost: number): Promise<HitResult> {
    if (!this.#runner.ready()) return Promise.reject(new StoreUnavailableError('Redis client is not ready'))
    const n = windows.length
    const keys = new Array<string>(n)
    const head = `${this.#prefix}{${key}}:`
    const args = new Array<string>(2 * n + 1)
    args[0] = String(cost)
    for (let i = 0; i < n; i++) {
      const w = windows[i]!
      keys[i] = head + w.id
      args[2 * i + 1] = String(w.amount)
      args[2 * i + 2] = String(w.windowMs)
    }
    return new Promise<HitResult>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new StoreUnavailableError(`Redis did not answer within ${this.#timeoutMs} ms`)),
        this.#timeoutMs,
      )
      this.#runner.run(HIT_SCRIPT_SHA, HIT_SCRIPT, keys, args).then(
        (reply) => {
          clearTimeout(timer)
          try {
            resolve(parseReply(reply, n))
          } catch (error) {
            reject(error)
          }
        },
        (error: unknown) => {
          clearTimeout(timer)
          reject(error)
        },
      )
    })
  }

  close(): void {}
}

function parseReply(reply: unknown, n: number): HitResult {
  if (!Array.isArray(reply) || reply.length !== 2 * n + 1) {
    throw new Error(`Unexpected reply from the rate-limit script: ${JSON.stringify(reply)}`)
  }
  const used = new Array<number>(n)
  const resetMs = new Array<number>(n)
  for (let i = 0; i < n; i++) {
    used[i] = Number(reply[2 * i + 1])
    resetMs[i] = Number(reply[2 * i + 2])
  }
  return { allowed: Number(reply[0]) === 1, used, resetMs }
}
