import type { GatewayEvents } from '../observe/events.js'
import type { BackendState } from './backend-state.js'
import type { BackendRegistry } from './registry.js'

/**
 * Tells the gateway's events when the outlier detector ejects a backend and when that ejection
 * ends. An ejection ends by time alone, with nothing on the request path to notice it, so each
 * one gets a timer (unref'd; ejections are rare).
 */
export class EjectionNotices {
  readonly #events: GatewayEvents
  readonly #registry: BackendRegistry
  readonly #timers = new Set<NodeJS.Timeout>()

  constructor(events: GatewayEvents, registry: BackendRegistry) {
    this.#events = events
    this.#registry = registry
  }

  ejected(backend: BackendState, now: number, consecutiveFailures: number): void {
    const until = backend.ejectedUntil
    this.#events.backendChange(backend, { kind: 'ejected', untilMs: until, consecutiveFailures })
    const timer = setTimeout(() => {
      this.#timers.delete(timer)
      // Ejected again meanwhile, or removed: that is not a return to rotation.
      if (backend.ejectedUntil === until && this.#registry.get(backend.id) === backend)
        this.#events.backendChange(backend, { kind: 'restored' })
    }, until - now)
    timer.unref()
    this.#timers.add(timer)
  }

  close(): void {
    for (const timer of this.#timers) clearTimeout(timer)
    this.#timers.clear()
  }
}
