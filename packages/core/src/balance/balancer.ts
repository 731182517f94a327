import {
  createWaitQueue,
  type FairnessOptions,
  type FairQueueSnapshot,
  type WaitQueue,
  type WaitSubject,
} from '../admission/index.js'
import type { GatewayEvents } from '../observe/events.js'
import { optionNames } from '../option-names.js'
import type { UserCallbacks } from '../user-callback.js'
import { checkNumber, checkObject, checkOptionGroup, describeValue } from '../validation.js'
import {
  ACTIVE_CHECK_OPTION_NAMES,
  ActiveHealthCheck,
  type ActiveHealthCheckOptions,
} from './active-health-check.js'
import type { BackendState } from './backend-state.js'
import { type ConcurrencyQueueOptions, QUEUE_OPTION_NAMES, STILL_FULL } from './concurrency-queue.js'
import { EjectionNotices } from './ejection-notices.js'
import { BalancerError } from './errors.js'
import {
  BackendScrapers,
  LOAD_REPORT_OPTION_NAMES,
  type LoadReportOptions,
} from './load-reports/backend-scrapers.js'
import { OUTLIER_OPTION_NAMES, OutlierDetector, type OutlierDetectorOptions } from './outlier-detector.js'
import { type ConsistentHashOptions, createPicker, type Picker } from './pickers/index.js'
import type { PickerFunction, RandomSource, StrategyName } from './pickers/picker.js'
import {
  PREFIX_AFFINITY_OPTION_NAMES,
  type PrefixAffinityOptions,
  PrefixAffinityPicker,
} from './pickers/prefix-affinity.js'
import { BackendRegistry } from './registry.js'
import type {
  AttemptOutcome,
  BackendConfig,
  BackendLease,
  BackendSnapshot,
  Balancer,
  PickContext,
} from './types.js'
import { ZonePlan, type ZoneSnapshot } from './zones.js'

export interface HealthOptions {
  /** Passive outlier ejection; on by default, `false` turns it off. */
  outlier?: OutlierDetectorOptions | false
  /** Active health checks; off unless given. */
  activeCheck?: ActiveHealthCheckOptions | false
  /** Longest cool-down a backend's Retry-After can impose. Default 60 000 ms. */
  maxCoolDownMs?: number
}

export interface BalancerOptions {
  backends?: readonly BackendConfig[]
  /** A strategy name or a custom picker function. Default `round-robin`. */
  strategy?: StrategyName | PickerFunction
  consistentHash?: ConsistentHashOptions
  /** Knobs of the `prefix-affinity` strategy. */
  prefixAffinity?: PrefixAffinityOptions
  /** How backends with `metrics` are scraped, and when a report counts as saturated. */
  loadReports?: LoadReportOptions
  /** This gateway's zone: backends in it are used first. Default none (zones play no part). */
  zone?: string
  /** Zones to spill to, in order, when the gateway's own zone has no room; other zones come after. */
  zonePreference?: string[]
  health?: HealthOptions
  queue?: ConcurrencyQueueOptions
  /** Fair shares of full backends between tenants, with priorities; without it the queue is FIFO. */
  fairness?: FairnessOptions<never>
  /** Time constant of the peak-EWMA latency estimate. Default 10 000 ms. */
  latencyDecayMs?: number
  /**
   * A failed attempt counts as at least this slow in the latency estimate, so a backend that
   * fails fast does not look like the fastest one. Default 1 000 ms.
   */
  failurePenaltyMs?: number
  /** Clock in epoch milliseconds; injected by tests. */
  now?: () => number
  /** Uniform random source in [0, 1); injected by tests. */
  random?: RandomSource
  /** The guard a custom picker function is called through. */
  callbacks?: UserCallbacks
  /** Told when a backend is ejected, restored, or changes its active-check verdict. */
  events?: GatewayEvents
}

const HEALTH_OPTION_NAMES = optionNames<HealthOptions>()(['outlier', 'activeCheck', 'maxCoolDownMs'])
const CONSISTENT_HASH_OPTION_NAMES = optionNames<ConsistentHashOptions>()(['loadFactor', 'virtualNodes'])

class BalancerLease implements BackendLease {
  readonly backend: BackendState
  readonly #balancer: BackendBalancer
  #done = false

  constructor(balancer: BackendBalancer, backend: BackendState) {
    this.#balancer = balancer
    this.backend = backend
  }

  finish(outcome: AttemptOutcome): void {
    if (this.#done) return
    this.#done = true
    this.#balancer.record(this.backend, outcome)
  }
}

/**
 * Composes the registry, a picker, the health pieces and the concurrency queue into the
 * `Balancer` the forwarder asks for backends. `acquire` answers synchronously whenever a
 * backend is free; only a request that has to wait for capacity gets a Promise.
 */
export class BackendBalancer implements Balancer {
  readonly registry: BackendRegistry
  readonly picker: Picker
  readonly outlierDetector: OutlierDetector | null
  readonly activeHealthCheck: ActiveHealthCheck | null
  readonly zones: ZonePlan
  readonly #scrapers: BackendScrapers
  readonly #queue: WaitQueue<BackendLease> & { snapshot(): FairQueueSnapshot }
  readonly #now: () => number
  readonly #failurePenaltyMs: number
  readonly #maxCoolDownMs: number
  // Reused on every pick to keep the request path free of allocation.
  readonly #candidates: BackendState[] = []
  readonly #fullCandidates: BackendState[] = []
  readonly #saturatedCandidates: BackendState[] = []
  readonly #ejections: EjectionNotices | undefined
  #closed = false

  constructor(options: BalancerOptions = {}) {
    const raw: unknown = options
    checkObject('options', raw)
    checkOptionGroup('health', options.health, HEALTH_OPTION_NAMES)
    checkOptionGroup('health.outlier', options.health?.outlier, OUTLIER_OPTION_NAMES, true)
    checkOptionGroup('health.activeCheck', options.health?.activeCheck, ACTIVE_CHECK_OPTION_NAMES, true)
    checkOptionGroup('queue', options.queue, QUEUE_OPTION_NAMES)
    checkOptionGroup('consistentHash', options.consistentHash, CONSISTENT_HASH_OPTION_NAMES)
    checkNumber('consistentHash.loadFactor', options.consistentHash?.loadFactor, 0.25, { min: 0 })
    checkNumber('consistentHash.virtualNodes', options.consistentHash?.virtualNodes, 160, {
      integer: true,
      min: 1,
    })
    checkOptionGroup('prefixAffinity', options.prefixAffinity, PREFIX_AFFINITY_OPTION_NAMES)
    checkOptionGroup('loadReports', options.loadReports, LOAD_REPORT_OPTION_NAMES)
    this.#now = options.now ?? Date.now
    this.zones = new ZonePlan(options.zone, options.zonePreference)
    this.#scrapers = new BackendScrapers(options.loadReports, this.#now)
    this.picker = createPicker(options.strategy ?? 'round-robin', {
      random: options.random,
      consistentHash: options.consistentHash,
      prefixAffinity: options.prefixAffinity,
      callbacks: options.callbacks,
    })
    const health = options.health ?? {}
    this.#failurePenaltyMs = checkNumber('failurePenaltyMs', options.failurePenaltyMs, 1_000, { min: 0 })
    this.#maxCoolDownMs = checkNumber('health.maxCoolDownMs', health.maxCoolDownMs, 60_000, { min: 0 })
    const latencyDecayMs = checkNumber('latencyDecayMs', options.latencyDecayMs, 10_000, {
      min: 0,
      minExclusive: true,
    })
    this.outlierDetector = health.outlier === false ? null : new OutlierDetector(health.outlier)
    this.#queue = createWaitQueue(options.queue, options.fairness, options.callbacks, this.#now)
    this.registry = new BackendRegistry(options.backends ?? [], {
      now: this.#now,
      latencyDecayMs,
      onChange: () => this.#queue.wake(),
      onAdded: (b) => this.#attach(b),
      onRemoved: (b) => this.#scrapers.detach(b),
    })
    const events = options.events
    this.#ejections = events && new EjectionNotices(events, this.registry)
    this.activeHealthCheck = health.activeCheck
      ? new ActiveHealthCheck(this.registry, health.activeCheck, (backend) => {
          events?.backendChange(backend, { kind: backend.activeHealthy ? 'healthy' : 'unhealthy' })
          this.#queue.wake()
        })
      : null
    this.activeHealthCheck?.start()
    for (const b of this.registry.list()) this.#attach(b)
  }

  acquire(
    ctx: PickContext & WaitSubject,
    exclude: ReadonlySet<string>,
    signal?: AbortSignal | (() => AbortSignal),
  ): BackendLease | Promise<BackendLease> {
    if (this.#closed) throw new BalancerError('The balancer is closed', 503, 'no_backend_available')
    if (typeof signal !== 'function') signal?.throwIfAborted()
    const lease = this.#select(ctx, exclude)
    if (lease !== STILL_FULL) return lease
    // Slow path: every candidate is at maxConcurrency. Allocation is fine from here on.
    const waitSignal = typeof signal === 'function' ? signal() : signal
    waitSignal?.throwIfAborted()
    const waitingOn = [...this.#fullCandidates]
    const waiting = this.#queue.enqueue(
      () => this.#select(ctx, exclude),
      waitSignal,
      () => {
        for (const b of waitingOn) b.queued--
      },
      ctx,
    )
    // Counted only now: a full queue throws above, and a request turned away never waited.
    for (const b of waitingOn) b.queued++
    return waiting
  }

  models(): string[] {
    return this.registry.models()
  }

  snapshot(): BackendSnapshot[] {
    return this.registry.snapshot()
  }

  /** Traffic per zone, best-ranked first. */
  zoneSnapshot(): ZoneSnapshot[] {
    return this.zones.snapshot(this.registry.list(), this.#now())
  }

  /** Characters of prompt text the strategy reads from each request; 0 when it reads none. */
  get promptChars(): number {
    return this.picker instanceof PrefixAffinityPicker ? this.picker.promptChars : 0
  }

  #attach(backend: BackendState): void {
    backend.zoneRank = this.zones.rank(backend.zone)
    this.#scrapers.attach(backend)
  }

  /** Requests waiting for a backend below its maxConcurrency. */
  get queueLength(): number {
    return this.#queue.length
  }

  /** The wait queue: how many wait, and with `fairness` each tenant's waiting and served share. */
  queueSnapshot(): FairQueueSnapshot {
    return this.#queue.snapshot()
  }

  /** Stops health-check timers and fails requests still waiting in the queue. */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#queue.rejectAll(new BalancerError('The balancer is closing', 503, 'no_backend_available'))
    this.#ejections?.close()
    await Promise.all([this.activeHealthCheck?.close(), this.#scrapers.close()])
  }

  /** Applies one attempt's outcome to its backend; called once per lease. */
  record(backend: BackendState, outcome: AttemptOutcome): void {
    const now = this.#now()
    backend.release()
    if (!outcome.cancelled) {
      if (outcome.ok) {
        backend.latency.observe(outcome.latencyMs, now)
        this.outlierDetector?.onSuccess(backend)
      } else {
        backend.totalErrors++
        backend.latency.observe(Math.max(outcome.latencyMs, this.#failurePenaltyMs), now)
        // 429 says "busy", not "broken": it cools the backend down but does not count toward ejection.
        if (outcome.status !== 429) {
          const failures = backend.consecutiveFailures + 1
          if (this.outlierDetector?.onFailure(backend, now, this.registry.list()))
            this.#ejections?.ejected(backend, now, failures)
        }
      }
    }
    const retryAfterMs = outcome.retryAfterMs
    if (retryAfterMs !== undefined && retryAfterMs > 0) {
      const until = now + Math.min(retryAfterMs, this.#maxCoolDownMs)
      if (until > backend.coolDownUntil) backend.coolDownUntil = until
    }
    this.#queue.wake()
  }

  /**
   * A lease on a backend chosen by the picker, STILL_FULL when the only usable backends are at
   * maxConcurrency, or a thrown BalancerError when nothing can serve the request.
   */
  #select(ctx: PickContext, exclude: ReadonlySet<string>): BackendLease | typeof STILL_FULL {
    const model = ctx.model
    if (model !== undefined && this.registry.size > 0 && !this.registry.knowsModel(model)) {
      const models = this.registry.models()
      throw new BalancerError(
        `The model ${describeValue(model)} does not exist; available models: ${models.join(', ')}`,
        404,
        'unknown_model',
        undefined,
        { models },
      )
    }
    const now = this.#now()
    const candidates = this.#candidates
    const full = this.#fullCandidates
    const saturated = this.#saturatedCandidates
    candidates.length = 0
    full.length = 0
    saturated.length = 0
    let matching = 0
    let healthyMatching = 0
    let unhealthy = 0
    let tried = 0
    let soonest = Number.POSITIVE_INFINITY
    // Only the best-ranked zone with room keeps candidates (see zones.ts); without a gateway zone
    // every backend ranks 0.
    let rank = Number.POSITIVE_INFINITY
    let saturatedRank = Number.POSITIVE_INFINITY
    const checkExclude = exclude.size > 0
    const scrapers = this.#scrapers

    for (const b of this.registry.list()) {
      if (model !== undefined && !b.serves(model)) continue
      matching++
      if (b.draining) continue
      if (b.isCoolingDown(now)) {
        if (b.coolDownUntil < soonest) soonest = b.coolDownUntil
        continue
      }
      const healthy = b.healthy(now)
      if (healthy) healthyMatching++
      if (checkExclude && exclude.has(b.id)) {
        tried++
        continue
      }
      if (!healthy) {
        unhealthy++
        if (b.isEjected(now) && b.ejectedUntil < soonest) soonest = b.ejectedUntil
        continue
      }
      if (!b.hasCapacity()) {
        full.push(b)
        continue
      }
      const r = b.zoneRank
      if (b.reports !== null && scrapers.saturated(b)) {
        if (r < saturatedRank) {
          saturated.length = 0
          saturatedRank = r
        }
        if (r === saturatedRank) saturated.push(b)
        continue
      }
      if (r < rank) {
        candidates.length = 0
        rank = r
      }
      if (r === rank) candidates.push(b)
    }

    // A full queue reported everywhere is still better served than refused: the reports only
    // order backends, they never turn a request away.
    if (candidates.length === 0 && saturated.length > 0) {
      for (const b of saturated) candidates.push(b)
      rank = saturatedRank
    }

    // Panic mode (Envoy's name): when health checks leave nothing that serves this request, an
    // attempt on an unhealthy backend beats a certain 503. It does not apply when healthy
    // backends exist but were already tried for this request.
    if (candidates.length === 0 && full.length === 0 && healthyMatching === 0 && unhealthy > 0) {
      rank = 0
      for (const b of this.registry.list()) {
        if (model !== undefined && !b.serves(model)) continue
        if (b.draining || b.isCoolingDown(now) || (checkExclude && exclude.has(b.id))) continue
        if (b.hasCapacity()) candidates.push(b)
        else full.push(b)
      }
    }

    if (candidates.length === 0) {
      if (full.length > 0) return STILL_FULL
      throw this.#noBackend(model, matching, tried, soonest, now)
    }

    const backend = this.picker.pick(candidates, ctx, this.registry)
    if (backend === undefined) {
      throw new BalancerError('The custom picker chose no backend', 503, 'no_backend_available')
    }
    backend.inFlight++
    backend.totalRequests++
    if (rank > 0) this.zones.noteSpill(backend)
    return new BalancerLease(this, backend)
  }

  #noBackend(
    model: string | undefined,
    matching: number,
    tried: number,
    soonest: number,
    now: number,
  ): BalancerError {
    const retryAfterMs = Number.isFinite(soonest) ? Math.max(1, Math.ceil(soonest - now)) : undefined
    let message: string
    if (this.registry.size === 0) message = 'No backends are registered'
    else if (tried > 0 && tried === matching)
      message = 'Every backend has already been tried for this request'
    else if (model !== undefined)
      message = `No backend serving the model ${describeValue(model)} is available right now`
    else message = 'No backend is available right now'
    return new BalancerError(message, 503, 'no_backend_available', retryAfterMs)
  }
}

export function createBalancer(options: BalancerOptions = {}): BackendBalancer {
  return new BackendBalancer(options)
}
