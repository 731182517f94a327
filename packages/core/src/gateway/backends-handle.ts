import type { FairQueueSnapshot } from '../admission/index.js'
import type { BackendBalancer } from '../balance/balancer.js'
import type { KvFeedSnapshot } from '../balance/kv-events/kv-event-feeds.js'
import { PrecisePrefixPicker, type PrecisePrefixStats } from '../balance/pickers/precise-prefix.js'
import type { BackendConfig, BackendSnapshot } from '../balance/types.js'
import type { ZoneSnapshot } from '../balance/zones.js'
import type { Forwarder } from '../forward/forwarder.js'

/**
 * `app.tollgate.backends` / `gate.backends`: change the backend set at runtime and read
 * each backend's state. Removing a backend also closes its connections once its
 * in-flight requests are done.
 */
export class BackendsHandle {
  readonly #balancer: BackendBalancer
  readonly #forwarder: Forwarder

  constructor(balancer: BackendBalancer, forwarder: Forwarder) {
    this.#balancer = balancer
    this.#forwarder = forwarder
  }

  /** Registers a backend; throws on a bad config or a duplicate id. */
  add(config: BackendConfig): BackendSnapshot {
    return this.#balancer.registry.add(config).snapshot()
  }

  /** Unregisters a backend at once; requests already sent to it finish. False if unknown. */
  remove(id: string): boolean {
    const removed = this.#balancer.registry.remove(id)
    if (removed) void this.#forwarder.closeFor(id)
    return removed
  }

  /** Stops sending new requests to a backend; resolves when its in-flight requests are done. */
  drain(id: string): Promise<void> {
    return this.#balancer.registry.drain(id)
  }

  /** Sends requests to a drained backend again. */
  undrain(id: string): void {
    this.#balancer.registry.undrain(id)
  }

  get(id: string): BackendSnapshot | undefined {
    return this.#balancer.registry.get(id)?.snapshot()
  }

  /** Every backend's state: in flight, totals, errors, latency estimate, status. */
  snapshot(): BackendSnapshot[] {
    return this.#balancer.snapshot()
  }

  /**
   * Traffic per zone, the gateway's own first: backends, how many are available, in flight,
   * requests, and requests that spilled there because better zones had no room.
   */
  zones(): ZoneSnapshot[] {
    return this.#balancer.zoneSnapshot()
  }

  /**
   * The wait queue for full backends: how many requests wait and, with `fairness`, each tenant's
   * waiting requests and its share of what the queue has served, and per priority level who waits
   * and what became of the others (served, shed, timed out, turned away by a full queue).
   */
  queue(): FairQueueSnapshot {
    return this.#balancer.queueSnapshot()
  }

  /**
   * With strategy `precise-prefix`: each backend's KV-event feed (blocks indexed, gaps, replays)
   * and the strategy's counts; null under another strategy.
   */
  kvEvents(): { feeds: KvFeedSnapshot[]; routing: PrecisePrefixStats } | null {
    const picker = this.#balancer.picker
    if (!(picker instanceof PrecisePrefixPicker)) return null
    return { feeds: picker.snapshot(), routing: { ...picker.stats } }
  }

  /** Every model a backend declares, sorted. */
  models(): string[] {
    return this.#balancer.models()
  }
}
