import type {
  AttemptOutcome,
  BackendTarget,
  ForwardStartInfo,
  GatewayEvents,
  LimitDecision,
  RequestEvents,
  TokenReservation,
} from '@tollgate/core/internal'
import { RateSeries } from './rate-series.js'
import { RecentSamples } from './recent-samples.js'

/** 5 s slots, 5 minutes of them: what the page's charts span. */
export const SLOT_MS = 5000
export const SLOTS = 60
/** A rate is read over the last 30 s (six whole slots). */
export const RATE_SLOTS = 6
const TTFT_SAMPLES = 256
/** Backends tracked at most; ids come from the config or DNS, never from clients. */
const MAX_BACKENDS = 1024

export class BackendStats {
  readonly answered = new RateSeries(SLOT_MS, SLOTS)
  readonly failed = new RateSeries(SLOT_MS, SLOTS)
  readonly ttftMs = new RecentSamples(TTFT_SAMPLES)
  lastFailureAt: number | null = null
  lastFailure: string | null = null
}

export class RouteStats {
  readonly requests = new RateSeries(SLOT_MS, SLOTS)
  readonly limited = new RateSeries(SLOT_MS, SLOTS)
  readonly tokenLimited = new RateSeries(SLOT_MS, SLOTS)
  readonly tokens = new RateSeries(SLOT_MS, SLOTS)
  totalRequests = 0
  totalLimited = 0
  totalTokenLimited = 0
  totalTokens = 0
}

/** The name tollgate's Fastify plugin gives a route's limits (`POST /v1/chat/completions`). */
export function routeScope(method: string | readonly string[], path: string): string {
  return `${[method].flat().join(',')} ${path}`
}

/**
 * What the status page shows over time, gathered as one more consumer of the gateway's events:
 * per backend the attempts that succeeded and failed and the time to the first streamed chunk;
 * per route the requests, 429s and tokens charged. Every structure is fixed-size (rings of slots
 * and samples) and lives as long as the running gateway, across reloads; the request path only
 * adds to counters, and rates and percentiles are computed when the page asks.
 */
export class StatusStats implements GatewayEvents {
  readonly #backends = new Map<string, BackendStats>()
  readonly #routes = new Map<string, RouteStats>()
  readonly #now: () => number

  constructor(now: () => number = Date.now) {
    this.#now = now
  }

  now(): number {
    return this.#now()
  }

  /** The stats of one backend; created on first use up to a fixed number of backends. */
  backend(id: string): BackendStats | undefined {
    let stats = this.#backends.get(id)
    if (stats === undefined && this.#backends.size < MAX_BACKENDS) {
      stats = new BackendStats()
      this.#backends.set(id, stats)
    }
    return stats
  }

  /** Forgets backends no longer registered (a DNS name that lost an address, a reload). */
  keepBackends(ids: ReadonlySet<string>): void {
    for (const id of this.#backends.keys()) if (!ids.has(id)) this.#backends.delete(id)
  }

  /** The routes of the config in force: their stats are kept across a reload, others dropped. */
  setRoutes(scopes: readonly string[]): void {
    const wanted = new Set(scopes)
    for (const scope of this.#routes.keys()) if (!wanted.has(scope)) this.#routes.delete(scope)
    for (const scope of scopes) if (!this.#routes.has(scope)) this.#routes.set(scope, new RouteStats())
  }

  route(scope: string): RouteStats | undefined {
    return this.#routes.get(scope)
  }

  /** A request to a configured route was answered. */
  answered(scope: string): void {
    const stats = this.#routes.get(scope)
    if (stats === undefined) return
    stats.totalRequests++
    stats.requests.add(this.#now())
  }

  /** Tokens charged to a route's budget once a request settled. */
  tokensCharged(scope: string, tokens: number): void {
    const stats = this.#routes.get(scope)
    if (stats === undefined || !(tokens > 0)) return
    stats.totalTokens += tokens
    stats.tokens.add(this.#now(), tokens)
  }

  forwardStart(_info: ForwardStartInfo): RequestEvents {
    return new StatusRequest(this)
  }

  limitDecision(route: string, decision: LimitDecision): void {
    if (decision.allowed) return
    const stats = this.#routes.get(route)
    if (stats === undefined) return
    stats.totalLimited++
    stats.limited.add(this.#now())
  }

  tokensRejected(route: string, _reservation: TokenReservation): void {
    const stats = this.#routes.get(route)
    if (stats === undefined) return
    stats.totalTokenLimited++
    stats.tokenLimited.add(this.#now())
  }

  backendChange(): void {}
}

/** One forwarded request as the status page sees it: its attempts and its first streamed chunk. */
class StatusRequest implements RequestEvents {
  readonly #stats: StatusStats
  readonly #startedAt: number
  #backend: BackendStats | undefined
  #stream = false

  constructor(stats: StatusStats) {
    this.#stats = stats
    this.#startedAt = stats.now()
  }

  queued(): void {}
  dequeued(): void {}
  tokens(): void {}
  end(): void {}

  attemptStart(backend: BackendTarget): void {
    this.#backend = this.#stats.backend(backend.id)
  }

  attemptEnd(backend: BackendTarget, outcome: AttemptOutcome): void {
    if (outcome.cancelled) return
    const stats = this.#stats.backend(backend.id)
    if (stats === undefined) return
    const now = this.#stats.now()
    if (outcome.ok) {
      stats.answered.add(now)
      return
    }
    stats.failed.add(now)
    stats.lastFailureAt = now
    stats.lastFailure =
      outcome.error !== undefined
        ? outcome.error.message
        : outcome.status !== undefined
          ? `HTTP ${outcome.status}`
          : 'failed'
  }

  responseStart(_status: number, stream: boolean): void {
    this.#stream = stream
  }

  responseData(): void {
    if (!this.#stream) return
    this.#stream = false
    this.#backend?.ttftMs.add(this.#stats.now(), this.#stats.now() - this.#startedAt)
  }
}
