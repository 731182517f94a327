import { describeValue, fail } from '../validation.js'
import type { BackendState } from './backend-state.js'

/** Traffic of one zone, as `backends.zones()` shows it. */
export interface ZoneSnapshot {
  /** null for backends without a `zone`. */
  zone: string | null
  /** 0 for the gateway's own zone, then the `zonePreference` order; unlisted zones after those. */
  rank: number
  backends: number
  /** Backends taking requests now: registered, not draining, not ejected, unhealthy or cooling down. */
  available: number
  inFlight: number
  /** Requests its backends received (of those registered now). */
  totalRequests: number
  /** Of those, requests sent here because every zone ranked before it was out of room. */
  spilledRequests: number
}

/**
 * The gateway's geography: its own `zone` first, then `zonePreference`, then every other zone
 * (and backends without one). The balancer keeps a request in the best-ranked zone that has an
 * available backend with room (healthy, below `maxConcurrency`, not reporting a full queue) and
 * lets the strategy pick within it, so traffic spills zone by zone and comes back as soon as a
 * better zone has room again. Without a gateway `zone` every backend ranks 0 and zones play no part.
 */
export class ZonePlan {
  readonly zone: string | null
  readonly order: readonly string[]
  readonly #spilled = new Map<string | null, number>()
  /** Requests of backends no longer registered, per zone, so the zone's count never goes down. */
  readonly #removedRequests = new Map<string | null, number>()

  constructor(zone: unknown, preference: unknown) {
    if (zone !== undefined && (typeof zone !== 'string' || zone.trim() === ''))
      fail('zone', "the gateway's own zone, a non-empty string like 'eu-west-1a', or left out", zone)
    const order: string[] = zone === undefined ? [] : [zone as string]
    if (preference !== undefined) {
      if (zone === undefined)
        fail('zonePreference', "used with 'zone' (the gateway's own zone); set zone too", preference)
      if (!Array.isArray(preference))
        fail(
          'zonePreference',
          "an array of zone names to spill to, in order, like ['eu-west-1b']",
          preference,
        )
      for (const [i, name] of preference.entries()) {
        if (typeof name !== 'string' || name.trim() === '')
          fail(`zonePreference[${i}]`, 'a non-empty zone name', name)
        if (order.includes(name))
          fail(
            `zonePreference[${i}]`,
            `a zone not already listed (${describeValue(name)} is ${name === zone ? "the gateway's own zone" : 'listed twice'})`,
            name,
          )
        order.push(name)
      }
    }
    this.zone = zone === undefined ? null : (zone as string)
    this.order = order
  }

  rank(zone: string | null): number {
    if (this.zone === null) return 0
    const i = zone === null ? -1 : this.order.indexOf(zone)
    return i < 0 ? this.order.length : i
  }

  /** Counts a request that went to `backend` because better-ranked zones had no room. */
  noteSpill(backend: BackendState): void {
    this.#spilled.set(backend.zone, (this.#spilled.get(backend.zone) ?? 0) + 1)
  }

  /** Keeps the requests of a backend being unregistered in its zone's count. */
  noteRemoved(backend: BackendState): void {
    this.#removedRequests.set(
      backend.zone,
      (this.#removedRequests.get(backend.zone) ?? 0) + backend.totalRequests,
    )
  }

  /**
   * Requests and spilled requests every zone ever received, those of removed backends included:
   * counts that only grow, for a Prometheus counter.
   */
  totals(backends: readonly BackendState[]): Map<string | null, { requests: number; spilled: number }> {
    const totals = new Map<string | null, { requests: number; spilled: number }>()
    const of = (zone: string | null) => {
      let t = totals.get(zone)
      if (t === undefined) {
        t = { requests: this.#removedRequests.get(zone) ?? 0, spilled: this.#spilled.get(zone) ?? 0 }
        totals.set(zone, t)
      }
      return t
    }
    for (const zone of this.#removedRequests.keys()) of(zone)
    for (const zone of this.#spilled.keys()) of(zone)
    for (const b of backends) of(b.zone).requests += b.totalRequests
    return totals
  }

  snapshot(backends: readonly BackendState[], now: number): ZoneSnapshot[] {
    const zones = new Map<string | null, ZoneSnapshot>()
    for (const b of backends) {
      let z = zones.get(b.zone)
      if (z === undefined) {
        z = {
          zone: b.zone,
          rank: b.zoneRank,
          backends: 0,
          available: 0,
          inFlight: 0,
          totalRequests: 0,
          spilledRequests: this.#spilled.get(b.zone) ?? 0,
        }
        zones.set(b.zone, z)
      }
      z.backends++
      if (b.status(now) === 'healthy') z.available++
      z.inFlight += b.ownInFlight
      z.totalRequests += b.totalRequests
    }
    return [...zones.values()].sort((a, b) => a.rank - b.rank || String(a.zone).localeCompare(String(b.zone)))
  }
}
