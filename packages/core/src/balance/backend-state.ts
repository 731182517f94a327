import type { BackendMetrics, KvEventsEndpoint, ValidatedBackendConfig } from './config.js'
import type { LoadReport } from './load-reports/engines.js'
import type { LoadReportState } from './load-reports/scraper.js'
import { PeakEwma } from './peak-ewma.js'
import type {
  BackendConnection,
  BackendSnapshot,
  BackendStatus,
  BackendTarget,
  LoadReportSnapshot,
} from './types.js'

export interface BackendStateOptions {
  /** Clock in milliseconds; injected so tests can move time without sleeping. */
  now?: () => number
  /** Time constant of the peak-EWMA latency estimate. */
  latencyDecayMs?: number
}

/** Where a backend's load report comes from (a `LoadReportScraper`). */
export interface LoadReportSource {
  /** The report if it can be trusted now, else undefined. */
  current(): LoadReport | undefined
  readonly state: LoadReportState
}

/**
 * What a picker may read about a backend. Custom pickers get this view; the live object behind
 * it changes as requests start and finish, so read it during the call, do not keep it.
 */
export type BackendView = Readonly<
  Pick<
    BackendState,
    | 'id'
    | 'url'
    | 'weight'
    | 'models'
    | 'zone'
    | 'maxConcurrency'
    | 'inFlight'
    | 'queued'
    | 'totalRequests'
    | 'totalErrors'
    | 'consecutiveFailures'
    | 'latencyMs'
    | 'latencyMeasured'
  >
>

/**
 * The live state of one backend: the host state through which the load balancer, the outlier
 * detector, the active checker and Retry-After cool-down talk to each other (Envoy's split).
 * Fields are plain and mutable because the request path updates them on every attempt.
 */
export class BackendState implements BackendTarget {
  readonly id: string
  readonly url: URL
  readonly weight: number
  /** Models served, or null for "any model". */
  readonly models: ReadonlySet<string> | null
  readonly zone: string | null
  readonly maxConcurrency: number | null
  readonly metrics: BackendMetrics | null
  readonly kvEvents: KvEventsEndpoint | null

  /** The scraper of the server's own load report; set while the backend is registered and has `metrics`. */
  reports: LoadReportSource | null = null
  /** `totalRequests` when the last report arrived: what was sent after it is not in it. */
  requestsAtReport = 0
  /** `totalFinished` when the last report arrived. */
  finishedAtReport = 0
  /**
   * The largest running batch a report showed while requests also waited there, i.e. a full batch:
   * the engine's slots (llama.cpp's `-np`, vLLM's `max_num_seqs` or its KV limit); 0 until seen.
   */
  reportedSlots = 0
  /** Position of its zone in the gateway's preference (0 = the gateway's own zone, or no zones in use). */
  zoneRank = 0
  /** Its own headers and model names; kept out of `snapshot()`, since headers hold credentials. */
  readonly connection: BackendConnection | undefined
  readonly keepAliveAfterStreams: boolean

  /**
   * Requests in flight there: this gateway's, plus with a shared `routingState` the other
   * replicas' (`othersInFlight`), so pickers and `maxConcurrency` count them all.
   */
  inFlight = 0
  /** The other replicas' requests in flight there, as the shared routing state last said; 0 without one. */
  othersInFlight = 0
  /** Requests the other replicas have sent there, as the shared routing state last said. */
  othersSent = 0
  /** Requests waiting in the gateway queue that this backend could serve. */
  queued = 0
  totalRequests = 0
  /** Attempts that ended (leases released). */
  totalFinished = 0
  totalErrors = 0
  consecutiveFailures = 0
  /** How often the outlier detector ejected it; multiplies the next ejection time. */
  timesEjected = 0
  /** Epoch ms until which the outlier detector keeps it out; 0 when not ejected. */
  ejectedUntil = 0
  /** Epoch ms until which it asked us (Retry-After) to leave it alone; 0 when not cooling down. */
  coolDownUntil = 0
  draining = false
  /** Verdict of the active health check; stays true when no active check runs. */
  activeHealthy = true
  readonly latency: PeakEwma

  readonly #now: () => number
  #drainWaiters: (() => void)[] = []

  constructor(config: ValidatedBackendConfig, options: BackendStateOptions = {}) {
    this.id = config.id
    this.url = config.url
    this.weight = config.weight
    this.models = config.models ? new Set(config.models) : null
    this.zone = config.zone
    this.maxConcurrency = config.maxConcurrency
    this.metrics = config.metrics
    this.kvEvents = config.kvEvents
    this.connection = config.connection
    this.keepAliveAfterStreams = config.keepAliveAfterStreams
    this.#now = options.now ?? Date.now
    this.latency = new PeakEwma(options.latencyDecayMs)
  }

  /** Peak-EWMA latency estimate in ms (time to response headers); 0 until measured. */
  get latencyMs(): number {
    return this.latency.value(this.#now())
  }

  get latencyMeasured(): boolean {
    return this.latency.measured
  }

  serves(model: string): boolean {
    return this.models === null || this.models.has(model)
  }

  isEjected(now: number): boolean {
    return this.ejectedUntil > now
  }

  isCoolingDown(now: number): boolean {
    return this.coolDownUntil > now
  }

  /** Passes both health verdicts: not ejected by the outlier detector, not failed by active checks. */
  healthy(now: number): boolean {
    return this.activeHealthy && !this.isEjected(now)
  }

  /** The server's last report while it can be trusted (fresh, last scrape good); else undefined. */
  freshReport(): LoadReport | undefined {
    return this.reports === null ? undefined : this.reports.current()
  }

  /**
   * Requests sent since the last report that are still in flight: the report cannot know them,
   * and without them a burst between two scrapes would all go to the server that looked idlest.
   */
  get sentSinceReport(): number {
    const sent = this.totalRequests - this.requestsAtReport
    return Math.min(sent, this.inFlight)
  }

  /** This gateway's own requests in flight there. */
  get ownInFlight(): number {
    return this.inFlight - this.othersInFlight
  }

  /**
   * Takes in what the other replicas have in flight and have sent there. Their sends since the
   * last report count in `sentSinceReport` like this gateway's own. True when their in-flight
   * count went down (capacity may have appeared).
   */
  shareCounts(inFlight: number, sent: number): boolean {
    const added = sent - this.othersSent
    if (added > 0) this.requestsAtReport -= added
    this.othersSent = sent
    const before = this.othersInFlight
    this.inFlight += inFlight - before
    this.othersInFlight = inFlight
    return inFlight < before
  }

  /**
   * Requests the last report counted that this gateway has seen end since: the report still has
   * them running (or waiting) until the next scrape. Ends of requests sent after the report (those
   * no longer in flight) are not among them.
   */
  get finishedSinceReport(): number {
    const sentAfter = this.totalRequests - this.requestsAtReport
    const endedOfSentAfter = sentAfter - this.sentSinceReport
    return Math.max(0, this.totalFinished - this.finishedAtReport - endedOfSentAfter)
  }

  /** Below `maxConcurrency` (always true without one). */
  hasCapacity(): boolean {
    return this.maxConcurrency === null || this.inFlight < this.maxConcurrency
  }

  status(now: number = this.#now()): BackendStatus {
    if (this.draining) return 'draining'
    if (this.isEjected(now)) return 'ejected'
    if (!this.activeHealthy) return 'unhealthy'
    if (this.isCoolingDown(now)) return 'cooling-down'
    return 'healthy'
  }

  /** Resolves once none of this gateway's requests is in flight; used by `BackendRegistry.drain`. */
  whenIdle(): Promise<void> {
    if (this.ownInFlight === 0) return Promise.resolve()
    return new Promise((resolve) => this.#drainWaiters.push(resolve))
  }

  /** Called by the lease when an attempt ends. */
  release(): void {
    this.totalFinished++
    if (this.ownInFlight > 0) this.inFlight--
    if (this.ownInFlight === 0 && this.#drainWaiters.length > 0) {
      const waiters = this.#drainWaiters
      this.#drainWaiters = []
      for (const resolve of waiters) resolve()
    }
  }

  snapshot(now: number = this.#now()): BackendSnapshot {
    return {
      id: this.id,
      url: this.url.pathname === '/' ? this.url.origin : this.url.origin + this.url.pathname,
      weight: this.weight,
      models: this.models ? [...this.models] : null,
      zone: this.zone,
      maxConcurrency: this.maxConcurrency,
      status: this.status(now),
      inFlight: this.ownInFlight,
      queued: this.queued,
      totalRequests: this.totalRequests,
      totalErrors: this.totalErrors,
      consecutiveFailures: this.consecutiveFailures,
      latencyMs: Math.round(this.latency.value(now) * 1000) / 1000,
      ejectedUntil: this.isEjected(now) ? this.ejectedUntil : null,
      loadReport: this.#reportSnapshot(),
    }
  }

  #reportSnapshot(): LoadReportSnapshot | null {
    if (this.metrics === null) return null
    const state = this.reports?.state
    const report = state?.report
    return {
      format: this.metrics.format,
      waiting: report?.waiting ?? null,
      running: report?.running ?? null,
      kvUsage: report?.kvUsage ?? null,
      lora: report?.lora
        ? {
            running: [...report.lora.running],
            waiting: [...report.lora.waiting],
            maxLora: report.lora.maxLora ?? null,
          }
        : null,
      ageMs: state?.ageMs ?? null,
      stale: state?.stale ?? true,
      sentSinceReport: this.sentSinceReport,
      scrapes: state?.scrapes ?? 0,
      failures: state?.failures ?? 0,
      lastError: state?.lastError ?? null,
    }
  }
}
