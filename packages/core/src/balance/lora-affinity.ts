import { optionNames } from '../option-names.js'
import { checkNumber, checkOptionGroup, fail } from '../validation.js'
import type { BackendState } from './backend-state.js'
import type { LoraReport } from './load-reports/lora-report.js'
import { capacityOf, loadOf, withinLoadBound } from './prefill-cost.js'

/** `loraAffinity` as an object: its knob. `true` takes the default. */
export interface LoraAffinityOptions {
  /**
   * How far above the average a backend holding the adapter may be loaded and still be preferred,
   * as `prefixAffinity.loadFactor`: while its load (reported queue + batch + sent since, or in
   * flight) stays within ⌈(1 + loadFactor) × average⌉. Default 0.5.
   */
  loadFactor?: number
}

export const LORA_AFFINITY_OPTION_NAMES = optionNames<LoraAffinityOptions>()(['loadFactor'])

/**
 * `loraAffinity`: narrows the candidates of a request whose `model` is a LoRA adapter before the
 * strategy picks among them. Backends whose fresh vLLM report lists the adapter (running or
 * waiting) come first, while within the load bound; failing that, backends whose adapter slots
 * (`max_lora`) are all taken by other adapters are left out while one with room is within the
 * bound, since there the request waits for a slot to free and the engine loads the adapter anew.
 * A backend without a fresh report, or without LoRA in it, is neither preferred nor avoided; a
 * model no report lists (the base model, or an adapter nobody runs) leaves the candidates as they
 * are. It reorders nothing and only ever removes candidates when some remain, so capacity,
 * health, saturation and zones have decided first, and the strategy decides last.
 */
export class LoraAffinity {
  readonly loadFactor: number
  // Reused by every pick, as the candidate scan's arrays are: the request path allocates nothing.
  readonly #holders: BackendState[] = []
  readonly #open: BackendState[] = []

  constructor(options: LoraAffinityOptions = {}) {
    this.loadFactor = checkNumber('loraAffinity.loadFactor', options.loadFactor, 0.5, { min: 0 })
  }

  /**
   * The candidates to pick from: `candidates` itself, or a subset of it in a reused array (valid
   * until the next call). `registered` is every backend, read only when no candidate lists the
   * model, to tell an adapter that runs elsewhere from the base model.
   */
  narrow(
    candidates: readonly BackendState[],
    model: string,
    registered: readonly BackendState[],
  ): readonly BackendState[] {
    if (candidates.length < 2) return candidates
    const holders = this.#holders
    holders.length = 0
    let slotsTaken = 0
    for (const b of candidates) {
      const lora = b.freshReport()?.lora
      if (lora === undefined) continue
      if (lora.adapters.has(model)) holders.push(b)
      else if (slotsFull(lora)) slotsTaken++
    }
    // The common cases end here: the base model, or nothing to prefer nor to avoid.
    if (holders.length === 0 && (slotsTaken === 0 || !listedBy(registered, model))) return candidates
    let total = 1
    let capacity = 0
    for (const b of candidates) {
      total += loadOf(b)
      capacity += capacityOf(b)
    }
    const loadFactor = this.loadFactor
    keepWithinBound(holders, total, capacity, loadFactor)
    if (holders.length > 0) return holders
    if (slotsTaken === 0) return candidates
    const open = this.#open
    open.length = 0
    for (const b of candidates) {
      const lora = b.freshReport()?.lora
      if (lora === undefined || !slotsFull(lora)) open.push(b)
    }
    keepWithinBound(open, total, capacity, loadFactor)
    return open.length > 0 ? open : candidates
  }
}

/** Checks `loraAffinity`: undefined or false (off), true, or an options object. */
export function createLoraAffinity(value: unknown): LoraAffinity | null {
  if (value === undefined || value === false) return null
  if (value === true) return new LoraAffinity()
  if (typeof value !== 'object' || value === null)
    fail('loraAffinity', 'true, false or { loadFactor }', value)
  checkOptionGroup('loraAffinity', value, LORA_AFFINITY_OPTION_NAMES)
  return new LoraAffinity(value as LoraAffinityOptions)
}

/** Every adapter slot taken: a request for another adapter waits there for one to free. */
function slotsFull(lora: LoraReport): boolean {
  return lora.maxLora !== undefined && lora.adapters.size >= lora.maxLora
}

/** Whether some backend's fresh report lists `model` as an adapter. */
function listedBy(backends: readonly BackendState[], model: string): boolean {
  for (const b of backends) if (b.freshReport()?.lora?.adapters.has(model)) return true
  return false
}

/** The bound of prefix-affinity and of consistent hashing with bounded loads, per unit of capacity. */
function keepWithinBound(list: BackendState[], total: number, capacity: number, loadFactor: number): void {
  let kept = 0
  for (const b of list) {
    if (withinLoadBound(b, loadOf(b), total, capacity, loadFactor)) list[kept++] = b
  }
  list.length = kept
}
