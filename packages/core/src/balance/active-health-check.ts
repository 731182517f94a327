import type { Agent } from 'undici'
import { optionNames } from '../option-names.js'
import { undici } from '../undici-loader.js'
import { checkNumber, fail } from '../validation.js'
import type { BackendState } from './backend-state.js'
import { ProbeDeadline } from './probe-deadline.js'
import type { BackendMembers } from './registry.js'

export interface ActiveHealthCheckOptions {
  /** Probed with GET on each backend's origin (not under its base path). Default `/health`. */
  path?: string
  /** Time between the end of one round of probes and the start of the next. Default 10 000 ms. */
  intervalMs?: number
  /** A probe that takes longer fails. Default 2 000 ms. */
  timeoutMs?: number
  /** Passing probes in a row that mark an unhealthy backend healthy again. Default 2. */
  healthyThreshold?: number
  /** Failing probes in a row that mark a backend unhealthy. Default 3. */
  unhealthyThreshold?: number
}

export const ACTIVE_CHECK_OPTION_NAMES = optionNames<ActiveHealthCheckOptions>()([
  'path',
  'intervalMs',
  'timeoutMs',
  'healthyThreshold',
  'unhealthyThreshold',
])

interface ProbeStreak {
  passes: number
  failures: number
}

/**
 * Optional active health checking: GETs a path on every backend on a timer and sets
 * `BackendState.activeHealthy` after enough passes or failures in a row. A 2xx or 3xx answer
 * passes; anything else, a timeout or a connection error fails.
 *
 * Probes go through an agent of their own so they never compete with forwarded requests for
 * connections, and so `close()` can tear every socket down.
 */
export class ActiveHealthCheck {
  readonly path: string
  readonly intervalMs: number
  readonly timeoutMs: number
  readonly healthyThreshold: number
  readonly unhealthyThreshold: number

  readonly #streaks = new WeakMap<BackendState, ProbeStreak>()
  readonly #agent: Agent
  readonly #closing = new AbortController()
  readonly #members: BackendMembers
  readonly #onChange: ((backend: BackendState) => void) | undefined
  #timer: NodeJS.Timeout | undefined
  #round: Promise<void> | undefined
  #closed = false

  /** `onChange` is called when some backend's verdict changed. */
  constructor(
    members: BackendMembers,
    options: ActiveHealthCheckOptions = {},
    onChange?: (backend: BackendState) => void,
  ) {
    this.#members = members
    this.#onChange = onChange
    const o = 'health.activeCheck'
    const path = options.path ?? '/health'
    if (typeof path !== 'string' || !path.startsWith('/') || path.startsWith('//')) {
      fail(`${o}.path`, "an absolute path like '/health'", path)
    }
    this.path = path
    this.intervalMs = checkNumber(`${o}.intervalMs`, options.intervalMs, 10_000, {
      min: 0,
      minExclusive: true,
    })
    this.timeoutMs = checkNumber(`${o}.timeoutMs`, options.timeoutMs, 2_000, { min: 0, minExclusive: true })
    this.healthyThreshold = checkNumber(`${o}.healthyThreshold`, options.healthyThreshold, 2, {
      integer: true,
      min: 1,
    })
    this.unhealthyThreshold = checkNumber(`${o}.unhealthyThreshold`, options.unhealthyThreshold, 3, {
      integer: true,
      min: 1,
    })
    this.#agent = new (undici().Agent)({ connections: 1, connect: { timeout: this.timeoutMs } })
  }

  /** Starts probing: one round at once, then one every `intervalMs`. */
  start(): void {
    if (this.#closed || this.#timer || this.#round) return
    this.#schedule(0)
  }

  /** Runs one round of probes now and resolves when every probe has ended. */
  checkNow(): Promise<void> {
    if (this.#closed) return Promise.resolve()
    this.#round ??= this.#probeAll().finally(() => {
      this.#round = undefined
    })
    return this.#round
  }

  /** Stops the timer, aborts probes in flight and closes the probe connections. */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    clearTimeout(this.#timer)
    this.#timer = undefined
    this.#closing.abort()
    await this.#round?.catch(() => {})
    await this.#agent.close()
  }

  #schedule(delay: number): void {
    this.#timer = setTimeout(() => {
      this.#timer = undefined
      void this.checkNow().then(() => {
        if (!this.#closed) this.#schedule(this.intervalMs)
      })
    }, delay)
    // A health timer must never be what keeps the process alive.
    this.#timer.unref()
  }

  async #probeAll(): Promise<void> {
    await Promise.all(this.#members.list().map((b) => this.#probe(b)))
  }

  async #probe(backend: BackendState): Promise<void> {
    let passed = false
    const deadline = new ProbeDeadline(this.timeoutMs, this.#closing.signal)
    try {
      const { statusCode, body } = await undici().request(new URL(this.path, backend.url.origin), {
        dispatcher: this.#agent,
        method: 'GET',
        headersTimeout: this.timeoutMs,
        bodyTimeout: this.timeoutMs,
        signal: deadline.signal,
      })
      // dump() settles without an error when the body is cut (its own timeout, a reset): such an
      // answer, and one still arriving at the deadline, fails the probe.
      await body.dump({ signal: deadline.signal, limit: DUMP_LIMIT })
      passed = statusCode >= 200 && statusCode < 400 && body.errored == null
    } catch {
      passed = false
    } finally {
      deadline.clear()
    }
    if (this.#closed) return
    this.#record(backend, passed)
  }

  #record(backend: BackendState, passed: boolean): void {
    let streak = this.#streaks.get(backend)
    if (!streak) {
      streak = { passes: 0, failures: 0 }
      this.#streaks.set(backend, streak)
    }
    if (passed) {
      streak.passes++
      streak.failures = 0
      if (!backend.activeHealthy && streak.passes >= this.healthyThreshold) {
        backend.activeHealthy = true
        this.#onChange?.(backend)
      }
    } else {
      streak.failures++
      streak.passes = 0
      if (backend.activeHealthy && streak.failures >= this.unhealthyThreshold) {
        backend.activeHealthy = false
        this.#onChange?.(backend)
      }
    }
  }
}

/** Bytes of an answer read (and dropped) to keep its connection; undici's own default. */
const DUMP_LIMIT = 128 * 1024
