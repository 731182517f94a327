import {
  createWaitQueue,
  type FairQueueSnapshot,
  type WaitQueue,
  type WaitSubject,
} from '../admission/index.js'
import { describeValue } from '../validation.js'
import { ActiveHealthCheck } from './active-health-check.js'
import type { BackendState } from './backend-state.js'
import { type BalancerOptions, balancerTimings, checkBalancerOptionGroups } from './balancer-options.js'
import { CandidateScan } from './candidate-scan.js'
import { STILL_FULL } from './concurrency-queue.js'
import { EjectionNotices } from './ejection-notices.js'
import { BalancerError } from './errors.js'
import { BackendScrapers } from './load-reports/backend-scrapers.js'
import { createLoraAffinity, type LoraAffinity } from './lora-affinity.js'
import { OutlierDetector } from './outlier-detector.js'
import { createPicker, type Picker } from './pickers/index.js'
import { PrecisePrefixPicker } from './pickers/precise-prefix.js'
import { PrefixAffinityPicker } from './pickers/prefix-affinity.js'
import { BackendRegistry } from './registry.js'
import type { PromptBlocks } from './routing-state/routing-state.js'
import { SharedPicks } from './routing-state/shared-picks.js'
import type { AttemptOutcome, BackendLease, BackendSnapshot, Balancer, PickContext } from './types.js'
import { ZonePlan, type ZoneSnapshot } from './zones.js'

export type { BalancerOptions, HealthOptions } from './balancer-options.js'

class BalancerLease implements BackendLease {
  readonly backend: BackendState
  readonly #balancer: BackendBalancer
  readonly #startedAt: number
  readonly #note: number
  #done = false

  constructor(balancer: BackendBalancer, backend: BackendState, startedAt: number, note: number) {
    this.#balancer = balancer
    this.backend = backend
    this.#startedAt = startedAt
    this.#note = note
  }

  finish(outcome: AttemptOutcome): void {
    if (this.#done) return
    this.#done = true
    this.#balancer.record(this.backend, outcome, this.#startedAt, this.#note)
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
  /** `loraAffinity`: narrows the candidates of a request for an adapter; null when off. */
  readonly loraAffinity: LoraAffinity | null
  readonly #scrapers: BackendScrapers
  readonly #queue: WaitQueue<BackendLease | Promise<BackendLease>> & { snapshot(): FairQueueSnapshot }
  readonly #now: () => number
  readonly #failurePenaltyMs: number
  readonly #maxCoolDownMs: number
  readonly #scan: CandidateScan
  readonly #ejections: EjectionNotices | undefined
  /** The routing state shared with other replicas (`routingState`); null when this process routes alone. */
  readonly #shared: SharedPicks | null
  #closed = false

  constructor(options: BalancerOptions = {}) {
    checkBalancerOptionGroups(options)
    this.#now = options.now ?? Date.now
    this.zones = new ZonePlan(options.zone, options.zonePreference)
    this.#scrapers = new BackendScrapers(options.loadReports, this.#now)
    this.loraAffinity = createLoraAffinity(options.loraAffinity)
    this.picker = createPicker(options.strategy ?? 'round-robin', {
      random: options.random,
      consistentHash: options.consistentHash,
      prefixAffinity: options.prefixAffinity,
      precisePrefix: options.precisePrefix,
      callbacks: options.callbacks,
    })
    const health = options.health ?? {}
    const { failurePenaltyMs, maxCoolDownMs, latencyDecayMs } = balancerTimings(options)
    this.#failurePenaltyMs = failurePenaltyMs
    this.#maxCoolDownMs = maxCoolDownMs
    this.outlierDetector = health.outlier === false ? null : new OutlierDetector(health.outlier)
    this.#queue = createWaitQueue(
      options.queue,
      options.fairness,
      options.callbacks,
      this.#now,
      options.clientKey,
    )
    this.registry = new BackendRegistry(options.backends ?? [], {
      now: this.#now,
      latencyDecayMs,
      onChange: () => this.#queue.wake(),
      onAdded: (b) => this.#attach(b),
      onRemoved: (b) => {
        this.#scrapers.detach(b)
        this.zones.noteRemoved(b)
        if (this.picker instanceof PrecisePrefixPicker) this.picker.feeds.detach(b)
      },
    })
    if (!(this.picker instanceof PrecisePrefixPicker)) rejectKvEventsWithout(this.registry.list())
    const events = options.events
    this.#ejections = events && new EjectionNotices(events, this.registry)
    this.activeHealthCheck = health.activeCheck
      ? new ActiveHealthCheck(this.registry, health.activeCheck, (backend) => {
          events?.backendChange(backend, { kind: backend.activeHealthy ? 'healthy' : 'unhealthy' })
          this.#queue.wake()
        })
      : null
    this.#scan = new CandidateScan(this.registry, this.#scrapers)
    this.#shared =
      options.routingState === undefined
        ? null
        : new SharedPicks(options.routingState, this.picker, {
            backends: () => this.registry.list(),
            changed: () => this.#queue.wake(),
            waiting: () => this.#queue.length > 0,
            logger: options.callbacks?.logger ?? console,
          })
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
    const shared = this.#shared
    // Only a prefix pick reads the shared state before picking; the others pick at once.
    const viewing = shared?.state.shared ? shared.view(ctx, this.registry.list()) : undefined
    if (viewing !== undefined) return viewing.then((blocks) => this.#acquire(ctx, exclude, signal, blocks))
    return this.#acquire(ctx, exclude, signal, undefined)
  }

  #acquire(
    ctx: PickContext & WaitSubject,
    exclude: ReadonlySet<string>,
    signal: AbortSignal | (() => AbortSignal) | undefined,
    blocks: PromptBlocks | undefined,
  ): BackendLease | Promise<BackendLease> {
    const lease = this.#select(ctx, exclude, signal, blocks)
    if (lease !== STILL_FULL) return lease
    // Slow path: every candidate is at maxConcurrency. Allocation is fine from here on.
    const waitSignal = typeof signal === 'function' ? signal() : signal
    waitSignal?.throwIfAborted()
    const waitingOn = [...this.#scan.full]
    this.#shared?.state.waiting()
    const waiting = this.#queue.enqueue(
      () => this.#select(ctx, exclude, signal, blocks),
      waitSignal,
      () => {
        for (const b of waitingOn) b.queued--
      },
      ctx,
    )
    // Counted only now: a full queue throws above, and a request turned away never waited.
    for (const b of waitingOn) b.queued++
    // A waiter's attempt may answer with a lease still being claimed; the promise adopts it.
    return waiting as Promise<BackendLease>
  }

  models(): string[] {
    return this.registry.models()
  }

  snapshot(): BackendSnapshot[] {
    return this.registry.snapshot()
  }

  /** Traffic per zone, best-ranked first. */
  /** Requests and spilled requests per zone since the start, removed backends included. */
  zoneTotals(): Map<string | null, { requests: number; spilled: number }> {
    return this.zones.totals(this.registry.list())
  }

  zoneSnapshot(): ZoneSnapshot[] {
    return this.zones.snapshot(this.registry.list(), this.#now())
  }

  /** Characters of prompt text the strategy reads from each request; 0 when it reads none. */
  get promptChars(): number {
    const picker = this.picker
    return picker instanceof PrefixAffinityPicker || picker instanceof PrecisePrefixPicker
      ? picker.promptChars
      : 0
  }

  /**
   * Work a request needs before it can be picked for (`precise-prefix` tokenizes its prompt);
   * undefined when there is none, which is the common case.
   */
  prepare(ctx: PickContext): Promise<void> | undefined {
    const picker = this.picker
    return picker instanceof PrecisePrefixPicker ? picker.prepare(ctx, this.registry.list()) : undefined
  }

  #attach(backend: BackendState): void {
    backend.zoneRank = this.zones.rank(backend.zone)
    this.#scrapers.attach(backend)
    if (this.picker instanceof PrecisePrefixPicker) this.picker.feeds.attach(backend)
    else if (backend.kvEvents !== null) rejectKvEventsWithout([backend])
  }

  /** Requests waiting for a backend below its maxConcurrency. */
  get queueLength(): number {
    return this.#queue.length
  }

  /** The wait queue: how many wait, and with `fairness` per tenant and per priority level. */
  queueSnapshot(): FairQueueSnapshot {
    return this.#queue.snapshot()
  }

  /** Stops health-check timers and fails requests still waiting in the queue. */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#queue.rejectAll(new BalancerError('The balancer is closing', 503, 'no_backend_available'))
    this.#ejections?.close()
    await Promise.all([
      this.activeHealthCheck?.close(),
      this.#scrapers.close(),
      this.picker instanceof PrecisePrefixPicker ? this.picker.close() : undefined,
      this.#shared?.state.close(),
    ])
  }

  /** Applies one attempt's outcome to its backend; called once per lease. */
  record(backend: BackendState, outcome: AttemptOutcome, startedAt?: number, pickNote = 0): void {
    const now = this.#now()
    backend.release()
    this.#shared?.state.release(backend)
    if (startedAt !== undefined) this.picker.attemptEnded?.(backend, pickNote, outcome, now - startedAt)
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
  #select(
    ctx: PickContext & WaitSubject,
    exclude: ReadonlySet<string>,
    signal?: AbortSignal | (() => AbortSignal),
    blocks?: PromptBlocks,
  ): BackendLease | Promise<BackendLease> | typeof STILL_FULL {
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
    const scan = this.#scan
    scan.scan(model, exclude, now)
    const candidates = scan.candidates
    if (candidates.length === 0) {
      if (scan.full.length > 0) return STILL_FULL
      throw scan.noBackend(model, now)
    }

    if (blocks !== undefined) this.#shared?.picking(ctx, blocks)
    const lora = this.loraAffinity
    const pickFrom =
      lora === null || model === undefined ? candidates : lora.narrow(candidates, model, this.registry.list())
    const backend = this.picker.pick(pickFrom, ctx, this.registry)
    if (backend === undefined) {
      throw new BalancerError('The custom picker chose no backend', 503, 'no_backend_available')
    }
    backend.inFlight++
    backend.totalRequests++
    if (scan.rank > 0) this.zones.noteSpill(backend)
    const lease = new BalancerLease(this, backend, now, this.picker.pickNote ?? 0)
    const shared = this.#shared
    if (shared === null || !shared.state.shared) return lease
    const claimed = shared.claim(backend, candidates, blocks)
    if (claimed === true) return lease
    return claimed.then((taken) => {
      if (taken) return lease
      // Full across replicas: this replica's view was behind. Give the place back and pick again.
      backend.inFlight--
      backend.totalRequests--
      shared.refused(backend)
      return this.acquire(ctx, exclude, signal)
    })
  }
}

/** A KV-event feed is read only by `precise-prefix`: under another strategy it would be opened for nothing. */
function rejectKvEventsWithout(backends: readonly BackendState[]): void {
  for (const b of backends) {
    if (b.kvEvents !== null)
      throw new TypeError(
        `tollgate: backend ${describeValue(b.id)} has kvEvents, which only strategy 'precise-prefix' reads: set strategy: 'precise-prefix' or remove kvEvents`,
      )
  }
}

export function createBalancer(options: BalancerOptions = {}): BackendBalancer {
  return new BackendBalancer(options)
}
