import { describeValue } from '../validation.js'
import type { BackendState } from './backend-state.js'
import { BalancerError } from './errors.js'
import type { BackendScrapers } from './load-reports/backend-scrapers.js'
import type { BackendRegistry } from './registry.js'

/**
 * One pass over the registry for a request: which backends the picker may choose from (model,
 * draining, cool-down, health, exclude, capacity, reported saturation, best zone), which are only
 * full, and why none may serve it. One per balancer, reused on every pick, so the request path
 * allocates nothing; its fields hold the last scan's result.
 */
export class CandidateScan {
  /** The backends the picker chooses from. */
  readonly candidates: BackendState[] = []
  /** Usable backends at maxConcurrency: a request waits for one of them. */
  readonly full: BackendState[] = []
  readonly #saturated: BackendState[] = []
  /** The zone rank of the candidates; above 0 the request spilled out of the gateway's zone. */
  rank = 0
  matching = 0
  tried = 0
  /** When the first cooling-down or ejected backend comes back; +Infinity when none will. */
  soonest = Number.POSITIVE_INFINITY

  constructor(
    private readonly registry: BackendRegistry,
    private readonly scrapers: BackendScrapers,
  ) {}

  scan(model: string | undefined, exclude: ReadonlySet<string>, now: number): void {
    const candidates = this.candidates
    const full = this.full
    const saturated = this.#saturated
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
    const scrapers = this.scrapers

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
    this.rank = rank
    this.matching = matching
    this.tried = tried
    this.soonest = soonest
  }

  /** Why the last scan left nothing to pick or wait for: the 503, with when to retry if known. */
  noBackend(model: string | undefined, now: number): BalancerError {
    const soonest = this.soonest
    const retryAfterMs = Number.isFinite(soonest) ? Math.max(1, Math.ceil(soonest - now)) : undefined
    let message: string
    if (this.registry.size === 0) message = 'No backends are registered'
    else if (this.tried > 0 && this.tried === this.matching)
      message = 'Every backend has already been tried for this request'
    else if (model !== undefined)
      message = `No backend serving the model ${describeValue(model)} is available right now`
    else message = 'No backend is available right now'
    return new BalancerError(message, 503, 'no_backend_available', retryAfterMs)
  }
}
