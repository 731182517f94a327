import { describeValue, fail, failWith } from '../validation.js'
import { BackendState, type BackendStateOptions } from './backend-state.js'
import { validateBackendConfig, validateBackendConfigs } from './config.js'
import type { BackendConfig, BackendSnapshot } from './types.js'

/** The membership a picker may need beyond the candidates, e.g. to build a hash ring. */
export interface BackendMembers {
  /** Changes whenever a backend is added or removed. */
  readonly version: number
  /** Every registered backend, in registration order; the same array until membership changes. */
  list(): readonly BackendState[]
}

export interface BackendRegistryOptions extends BackendStateOptions {
  /** Called after add, remove and undrain, when waiting requests may now find a backend. */
  onChange?: () => void
  /** Called for each backend registered by `add` (not for those given to the constructor). */
  onAdded?: (backend: BackendState) => void
  /** Called for each backend `remove` unregisters. */
  onRemoved?: (backend: BackendState) => void
}

/** The registered backends, changeable at runtime. */
export class BackendRegistry implements BackendMembers {
  #backends: readonly BackendState[] = []
  readonly #byId = new Map<string, BackendState>()
  #modelList: string[] | null = null
  #anyModelCount = 0
  readonly #modelCounts = new Map<string, number>()
  readonly #stateOptions: BackendStateOptions
  readonly #onChange: (() => void) | undefined
  readonly #onAdded: ((backend: BackendState) => void) | undefined
  readonly #onRemoved: ((backend: BackendState) => void) | undefined
  readonly #now: () => number
  #version = 0

  constructor(configs: readonly BackendConfig[] = [], options: BackendRegistryOptions = {}) {
    this.#now = options.now ?? Date.now
    this.#stateOptions = { now: this.#now, latencyDecayMs: options.latencyDecayMs }
    this.#onChange = options.onChange
    this.#onAdded = options.onAdded
    this.#onRemoved = options.onRemoved
    for (const config of validateBackendConfigs(configs))
      this.#insert(new BackendState(config, this.#stateOptions))
  }

  get version(): number {
    return this.#version
  }

  get size(): number {
    return this.#backends.length
  }

  /** Registers a backend; throws an OptionError for a bad config or an id already registered. */
  add(config: BackendConfig): BackendState {
    const validated = validateBackendConfig(config, 'backend')
    if (this.#byId.has(validated.id)) {
      failWith(
        'backend.id',
        `${describeValue(validated.id)} is already registered; remove it first or give the new one a distinct id`,
      )
    }
    const state = new BackendState(validated, this.#stateOptions)
    this.#insert(state)
    this.#onAdded?.(state)
    this.#onChange?.()
    return state
  }

  /**
   * Unregisters a backend at once; requests already in flight on it finish normally.
   * Use `drain` first to stop new requests and wait for those. Returns false for an unknown id.
   */
  remove(id: string): boolean {
    const state = this.#byId.get(id)
    if (!state) return false
    this.#byId.delete(id)
    this.#backends = this.#backends.filter((b) => b !== state)
    if (state.models === null) {
      this.#anyModelCount--
    } else {
      for (const model of state.models) {
        const count = (this.#modelCounts.get(model) ?? 1) - 1
        if (count === 0) this.#modelCounts.delete(model)
        else this.#modelCounts.set(model, count)
      }
    }
    this.#modelList = null
    this.#version++
    this.#onRemoved?.(state)
    this.#onChange?.()
    return true
  }

  /** Stops new requests to a backend; resolves when its in-flight requests have finished. */
  drain(id: string): Promise<void> {
    const state = this.#require(id)
    state.draining = true
    return state.whenIdle()
  }

  /** Takes a drained backend back into rotation. */
  undrain(id: string): void {
    const state = this.#require(id)
    if (!state.draining) return
    state.draining = false
    this.#onChange?.()
  }

  get(id: string): BackendState | undefined {
    return this.#byId.get(id)
  }

  has(id: string): boolean {
    return this.#byId.has(id)
  }

  list(): readonly BackendState[] {
    return this.#backends
  }

  snapshot(): BackendSnapshot[] {
    const now = this.#now()
    return this.#backends.map((b) => b.snapshot(now))
  }

  /** Every model some backend declares, sorted; empty when none declare models. */
  models(): string[] {
    this.#modelList ??= [...this.#modelCounts.keys()].sort()
    return [...this.#modelList]
  }

  /** Whether any backend declares models, i.e. whether requests are routed by their `model`. */
  get declaresModels(): boolean {
    return this.#modelCounts.size > 0
  }

  /** Whether some backend lists `model` in its `models` (a name safe to use as a metric label). */
  declares(model: string): boolean {
    return this.#modelCounts.has(model)
  }

  /** True when some registered backend serves `model` (a backend without `models` serves all). */
  knowsModel(model: string): boolean {
    return this.#anyModelCount > 0 || this.#modelCounts.has(model)
  }

  #insert(state: BackendState): void {
    if (this.#byId.has(state.id)) failWith('backend.id', `${describeValue(state.id)} is already registered`)
    this.#byId.set(state.id, state)
    // Copy on write: a picker iterating the old array is never disturbed by a change.
    this.#backends = [...this.#backends, state]
    if (state.models === null) {
      this.#anyModelCount++
    } else {
      for (const model of state.models) this.#modelCounts.set(model, (this.#modelCounts.get(model) ?? 0) + 1)
    }
    this.#modelList = null
    this.#version++
  }

  #require(id: string): BackendState {
    const state = this.#byId.get(id)
    if (!state) {
      const known = [...this.#byId.keys()].map((k) => describeValue(k)).join(', ') || 'none'
      fail('id', `the id of a registered backend (registered: ${known})`, id)
    }
    return state
  }
}
