import { randomBytes } from 'node:crypto'
import { CallDeadlines, type WatchedCall } from '../../limits/call-deadlines.js'
import { isNoScript, type ScriptRunner, scriptRunnerFor } from '../../limits/redis-client.js'
import { replyIntegers } from '../../limits/redis-reply.js'
import { isRedisOutage, StoreUnavailableError } from '../../limits/redis-store.js'
import type { BackendState } from '../backend-state.js'
import { type RoutingScript, SCRIPTS } from './routing-scripts.js'
import type { PromptBlocks, RoutingState, RoutingStateOptions, RoutingStateOwner } from './routing-state.js'

export interface RedisRoutingStateSettings extends Required<Omit<RoutingStateOptions, 'redis' | 'prefix'>> {
  prefix: string
  /** Blocks kept per backend in the shared prefix index (`prefixAffinity.indexBlocks`). */
  indexBlocks: number
}

/**
 * The routing state every replica sharing a Redis reads and writes (see routing-scripts.ts).
 *
 * Synchronous: a request's capacity lease where the backend has `maxConcurrency` (one round trip,
 * atomic across replicas) and, for `prefix-affinity`, the prefix lookup (one round trip for all
 * blocks of all candidates). Eventually consistent: the other replicas' in-flight and sent counts
 * a picker orders by (fresh as of the last reply, at worst one heartbeat old), and the blocks a
 * request leaves in the index (written with its lease, or in the background).
 *
 * No request waits on a dead Redis: a client that is not connected is not even tried, a call
 * unanswered after `timeoutMs` falls back, and from the first failure on every pick routes on
 * this replica's own state at once (logged once) until a heartbeat gets an answer again (logged
 * once). A replica also starts on its own state and shares from its first answered heartbeat (sent
 * at once), so no request waits on the first connection. A killed replica stops renewing its entry, and after `leaseTtlMs` its requests no longer
 * count anywhere; a heartbeat restates this replica's own counts, healing drift from lost calls.
 */
export class RedisRoutingState implements RoutingState {
  readonly #runner: ScriptRunner
  readonly #owner: RoutingStateOwner
  readonly #settings: RedisRoutingStateSettings
  readonly #keys: string[]
  readonly #me = randomBytes(8).toString('hex')
  readonly #deadlines: CallDeadlines
  readonly #values: number[] = []
  // The settings as the scripts take them, written once rather than on every call.
  readonly #prefixTtl: string
  readonly #leaseTtl: string
  readonly #indexBlocks: string
  /** Routing on this replica's own state: from the start until a heartbeat is answered, and in outages. */
  #down = true
  /** Whether the last word logged was that the state is unavailable. */
  #saidDown = false
  #saidWrongReply = false
  #saidCallFailed = false
  #closed = false
  /** Closing, with requests of this replica still in flight: they stay counted until they end. */
  #leaving: Promise<void> | undefined
  #left: (() => void) | undefined
  #timer: NodeJS.Timeout | undefined
  #beating = false
  #polling = false

  constructor(options: RoutingStateOptions, settings: RedisRoutingStateSettings, owner: RoutingStateOwner) {
    this.#runner = scriptRunnerFor(options.redis)
    this.#owner = owner
    this.#settings = settings
    this.#keys = [`${settings.prefix}{routing}:`]
    this.#prefixTtl = String(settings.prefixTtlMs)
    this.#leaseTtl = String(settings.leaseTtlMs)
    this.#indexBlocks = String(settings.indexBlocks)
    const timeoutMs = settings.timeoutMs
    this.#deadlines = new CallDeadlines(
      timeoutMs,
      () => new StoreUnavailableError(`Redis did not answer within ${timeoutMs} ms`),
    )
    this.#schedule(0)
  }

  /** This replica's name in the shared state. */
  get replica(): string {
    return this.#me
  }

  get shared(): boolean {
    return !this.#down && !this.#closed && this.#leaving === undefined
  }

  view(candidates: readonly BackendState[], blocks: PromptBlocks | undefined): Promise<boolean> {
    // The caller's array is its own (a copy): it is read again when the reply comes.
    const n = candidates.length
    const count = blocks?.count ?? 0
    const args = new Array<string>(5 + n)
    args[0] = this.#me
    args[1] = this.#prefixTtl
    args[2] = String(n)
    for (let i = 0; i < n; i++) args[3 + i] = (candidates[i] as BackendState).id
    args[3 + n] = String(count)
    args[4 + n] = blocks?.text ?? ''
    return this.#call(SCRIPTS.view, args).then((reply) => {
      if (reply === undefined) return false
      const values = this.#values
      if (!this.#read(reply, 4 * n)) return false
      let freed = false
      for (let i = 0; i < n; i++) {
        if ((candidates[i] as BackendState).shareCounts(values[4 * i]!, values[4 * i + 1]!)) freed = true
        if (blocks !== undefined) {
          blocks.matched[i] = values[4 * i + 2]!
          blocks.homes[i] = values[4 * i + 3]!
        }
      }
      if (freed) this.#owner.changed()
      return true
    })
  }

  claim(
    backend: BackendState,
    candidates: readonly BackendState[],
    blocks: PromptBlocks | undefined,
    home: boolean,
  ): true | Promise<boolean> {
    // The balancer reuses its candidates array for the next pick: keep this one's.
    const list = candidates.slice()
    const n = list.length
    const count = blocks?.count ?? 0
    const args = new Array<string>(10 + n)
    args[0] = this.#me
    args[1] = this.#leaseTtl
    args[2] = backend.id
    args[3] = String(backend.maxConcurrency ?? -1)
    args[4] = String(n)
    for (let i = 0; i < n; i++) args[5 + i] = (list[i] as BackendState).id
    args[5 + n] = String(count)
    args[6 + n] = home ? '1' : '0'
    args[7 + n] = this.#indexBlocks
    args[8 + n] = this.#prefixTtl
    args[9 + n] = blocks?.text ?? ''
    const answered = this.#call(SCRIPTS.claim, args).then((reply) => {
      if (reply === undefined) return true
      const values = this.#values
      if (!this.#read(reply, 1 + 2 * n)) return true
      let freed = false
      for (let i = 0; i < n; i++) {
        if ((list[i] as BackendState).shareCounts(values[1 + 2 * i]!, values[2 + 2 * i]!)) freed = true
      }
      if (freed) this.#owner.changed()
      return values[0] === 1
    })
    // Without a capacity to respect there is nothing to wait for: the count follows.
    return backend.maxConcurrency === null ? true : answered
  }

  release(backend: BackendState): void {
    if (this.#closed) return
    if (!this.#down) {
      void this.#call(SCRIPTS.release, [this.#me, backend.id]).then((reply) => {
        if (reply === undefined) return
        const values = this.#values
        if (!this.#read(reply, 2)) return
        if (backend.shareCounts(values[0]!, values[1]!)) this.#owner.changed()
      })
    }
    if (this.#leaving !== undefined && this.#idle()) this.#left?.()
  }

  /**
   * Leaves the shared state: at once when none of this replica's requests is in flight; else
   * once the last ends (they stay counted, and renewed, while the gateway drains them). Does not
   * wait for that: the gateway closing waits for its requests itself.
   */
  close(): Promise<void> {
    if (this.#closed || this.#leaving !== undefined) return Promise.resolve()
    this.#leaving = new Promise<void>((resolve) => {
      this.#left = resolve
    }).then(() => this.#leave())
    if (this.#idle()) this.#left?.()
    return this.#idle() ? this.#leaving : Promise.resolve()
  }

  #idle(): boolean {
    for (const b of this.#owner.backends()) if (b.ownInFlight > 0) return false
    return true
  }

  async #leave(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    clearTimeout(this.#timer)
    const ids = [...this.#owner.backends()].map((b) => b.id)
    if (!this.#down) await this.#call(SCRIPTS.leave, [this.#me, String(ids.length), ...ids], true)
    this.#deadlines.close()
  }

  /**
   * One script call with its deadline: the reply, or undefined when Redis could not answer in
   * time (then the state is down from now on). A reply that is an error of the call itself (not
   * an outage) is logged and also answered with undefined, so no request fails over routing state.
   */
  #call(script: RoutingScript, args: string[], probe = false): Promise<unknown> {
    if (this.#down && !probe) return Promise.resolve(undefined)
    if (!this.#runner.ready()) {
      this.#fellBack(new StoreUnavailableError('Redis client is not ready'))
      return Promise.resolve(undefined)
    }
    return new Promise((resolve) => {
      const call = this.#deadlines.watch((error) => {
        this.#fellBack(error)
        resolve(undefined)
      })
      const keys = this.#keys
      this.#runner.evalsha(script.sha, keys, args).then(
        (reply) => {
          if (call.settle()) resolve(reply)
        },
        (error: unknown) => {
          if (!isNoScript(error)) this.#failed(call, error, resolve)
          else
            this.#runner.eval(script.script, keys, args).then(
              (reply) => {
                if (call.settle()) resolve(reply)
              },
              (retried: unknown) => this.#failed(call, retried, resolve),
            )
        },
      )
    })
  }

  /** A call that failed: an outage falls back; any other error is logged once. Either answers undefined. */
  #failed(call: WatchedCall, error: unknown, resolve: (reply: undefined) => void): void {
    if (!call.settle()) return
    if (isRedisOutage(error)) this.#fellBack(error)
    else if (!this.#saidCallFailed) {
      // A wrong call (a key clash such as WRONGTYPE) is a bug to report once, not an outage.
      this.#saidCallFailed = true
      this.#owner.logger.warn(`tollgate: routing state call failed: ${(error as Error).message}`)
    }
    resolve(undefined)
  }

  /**
   * Reads a script's integers into `#values`: false for anything else (a script of another version,
   * a proxy rewriting replies), logged once; the request goes on as if Redis had not answered.
   */
  #read(reply: unknown, expected: number): boolean {
    let count: number
    try {
      count = replyIntegers(reply, this.#values)
    } catch {
      count = -1
    }
    if (count === expected) return true
    if (!this.#saidWrongReply) {
      this.#saidWrongReply = true
      this.#owner.logger.warn(
        'tollgate: unexpected reply from the routing state script; routing on the replies that read',
      )
    }
    return false
  }

  /** Routes on this replica's own state from now on: the others' counts no longer apply. */
  #fellBack(error: unknown): void {
    if (this.#closed) return
    if (!this.#saidDown) {
      this.#saidDown = true
      const reason = error instanceof Error ? error.message : String(error)
      this.#owner.logger.warn(
        `tollgate: routing state unavailable (${reason}); each replica routes on its own state until Redis answers again`,
      )
    }
    if (this.#down) return
    this.#down = true
    for (const b of this.#owner.backends()) b.shareCounts(0, b.othersSent)
    this.#owner.changed()
    if (!this.#beating) this.#schedule(this.#settings.heartbeatMs)
  }

  #schedule(delayMs: number): void {
    if (this.#closed) return
    clearTimeout(this.#timer)
    this.#timer = setTimeout(() => void this.#heartbeat(), delayMs)
    this.#timer.unref()
  }

  /** Renews this replica's entry and states its counts; while down, this is the probe. */
  async #heartbeat(): Promise<void> {
    if (this.#beating || this.#closed) return
    this.#beating = true
    this.#polling = false
    try {
      const backends = [...this.#owner.backends()]
      const args = new Array<string>(3 + 2 * backends.length)
      args[0] = this.#me
      args[1] = this.#leaseTtl
      args[2] = String(backends.length)
      for (let i = 0; i < backends.length; i++) {
        const b = backends[i] as BackendState
        args[3 + 2 * i] = b.id
        args[4 + 2 * i] = String(b.ownInFlight)
      }
      const wasDown = this.#down
      const reply = await this.#call(SCRIPTS.heartbeat, args, true)
      if (reply === undefined || this.#closed) return
      const values = this.#values
      if (!this.#read(reply, 2 * backends.length)) return
      let freed = false
      for (let i = 0; i < backends.length; i++) {
        if ((backends[i] as BackendState).shareCounts(values[2 * i]!, values[2 * i + 1]!)) freed = true
      }
      if (wasDown && this.#down) {
        this.#down = false
        if (this.#saidDown) {
          this.#saidDown = false
          ;(this.#owner.logger.info ?? this.#owner.logger.warn).call(
            this.#owner.logger,
            'tollgate: routing state is back; replicas route as one again',
          )
        }
      }
      if (freed) this.#owner.changed()
    } finally {
      this.#beating = false
      this.#schedule(this.#owner.waiting() ? this.#pollMs : this.#settings.heartbeatMs)
    }
  }

  /**
   * Requests wait here for capacity another replica may free, and no message says when it does:
   * the others' counts are read every `#pollMs` while any waits.
   */
  waiting(): void {
    if (this.#down || this.#closed || this.#beating || this.#polling) return
    this.#polling = true
    this.#schedule(this.#pollMs)
  }

  get #pollMs(): number {
    return Math.min(POLL_MS, this.#settings.heartbeatMs)
  }
}

/** How often the others' counts are read while requests wait for capacity. */
const POLL_MS = 25
