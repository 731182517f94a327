import { optionNames } from '../../option-names.js'
import { checkNumber } from '../../validation.js'
import type { BackendState } from '../backend-state.js'
import { reportedLoad } from '../load.js'
import { hashPromptBlocks, PrefixIndex } from '../prefix-index.js'
import type { PickContext } from '../types.js'
import { LeastConnectionsPicker } from './least-connections.js'
import type { Picker } from './picker.js'

/** `prefixAffinity`: the knobs of the `prefix-affinity` strategy. */
export interface PrefixAffinityOptions {
  /** Characters per prefix block (about 4 per token). Default 256, about 64 tokens: four vLLM blocks. */
  blockChars?: number
  /** Blocks hashed per request; the prompt beyond them is not read. Default 128 (32 KiB of prompt). */
  maxBlocks?: number
  /** Blocks remembered per backend, least recently used forgotten first. Default 16 384 (~1 MiB per backend). */
  indexBlocks?: number
  /**
   * How far above the average the preferred backend's load may be before affinity yields to load,
   * as in consistent hashing with bounded loads: it keeps the request while its load (reported queue
   * + batch + sent since, or in flight) stays within ⌈(1 + loadFactor) × average⌉. Default 0.5.
   */
  loadFactor?: number
}

export const PREFIX_AFFINITY_OPTION_NAMES = optionNames<PrefixAffinityOptions>()([
  'blockChars',
  'maxBlocks',
  'indexBlocks',
  'loadFactor',
])

/**
 * `prefix-affinity`: a request goes to the candidate that holds the longest prefix of its prompt
 * (so the server's prefix cache skips that part of prefill), unless that candidate is loaded past
 * the bound; then, and without any match, to the least loaded (`least-load`: reports when fresh,
 * else peak-EWMA). The chosen backend records the prompt's blocks, so a spilled conversation
 * sticks to its new server from the next turn on.
 */
export class PrefixAffinityPicker implements Picker {
  readonly name = 'prefix-affinity'
  readonly blockChars: number
  readonly maxBlocks: number
  readonly indexBlocks: number
  readonly loadFactor: number
  readonly #byLoad = new LeastConnectionsPicker(reportedLoad, 'least-load')
  readonly #indexes = new WeakMap<BackendState, PrefixIndex>()
  // Reused by every pick: the hashes of the current request's blocks.
  readonly #hashes: Float64Array
  #hits = 0
  #requests = 0

  constructor(options: PrefixAffinityOptions = {}) {
    const o = 'prefixAffinity'
    this.blockChars = checkNumber(`${o}.blockChars`, options.blockChars, 256, { integer: true, min: 1 })
    this.maxBlocks = checkNumber(`${o}.maxBlocks`, options.maxBlocks, 128, { integer: true, min: 1 })
    this.indexBlocks = checkNumber(`${o}.indexBlocks`, options.indexBlocks, 16_384, { integer: true, min: 1 })
    this.loadFactor = checkNumber(`${o}.loadFactor`, options.loadFactor, 0.5, { min: 0 })
    this.#hashes = new Float64Array(this.maxBlocks)
  }

  /** Characters of prompt text a request needs to carry for this picker. */
  get promptChars(): number {
    return this.blockChars * this.maxBlocks
  }

  /** Requests with prompt blocks, and how many of them went to a backend holding a prefix. */
  get stats(): { requests: number; affinityHits: number } {
    return { requests: this.#requests, affinityHits: this.#hits }
  }

  pick(candidates: readonly BackendState[], ctx: PickContext): BackendState | undefined {
    const prompt = ctx.prompt
    const count =
      prompt === undefined ? 0 : hashPromptBlocks(prompt, this.blockChars, this.maxBlocks, this.#hashes)
    if (count === 0 || candidates.length === 0) return this.#byLoad.pick(candidates)
    this.#requests++
    let total = 1
    let capacity = 0
    for (const b of candidates) {
      total += loadOf(b)
      capacity += capacityOf(b)
    }
    let preferred: BackendState | undefined
    let longest = 0
    for (const backend of candidates) {
      const length = this.#index(backend).matchLength(this.#hashes, count)
      if (length === 0 || length < longest) continue
      if (length > longest || reportedLoad.compare(backend, preferred as BackendState) < 0) {
        preferred = backend
        longest = length
      }
    }
    let chosen: BackendState | undefined
    // Bounded loads: the preferred backend keeps the request while its load, counting this one,
    // stays within (1 + c) × its fair share; past that the least loaded gets it and holds the prefix.
    if (
      preferred !== undefined &&
      loadOf(preferred) + 1 <= Math.ceil(((1 + this.loadFactor) * total * capacityOf(preferred)) / capacity)
    ) {
      chosen = preferred
      this.#hits++
    } else {
      chosen = this.#byLoad.pick(candidates)
    }
    if (chosen !== undefined) this.#index(chosen).record(this.#hashes, count)
    return chosen
  }

  #index(backend: BackendState): PrefixIndex {
    let index = this.#indexes.get(backend)
    if (index === undefined) {
      index = new PrefixIndex(this.indexBlocks)
      this.#indexes.set(backend, index)
    }
    return index
  }
}

/**
 * Requests at or ahead of a new one: the fresh report plus what was sent since (at least what is in
 * flight from here), else in flight here.
 */
function loadOf(b: BackendState): number {
  const report = b.freshReport()
  if (report === undefined) return b.inFlight
  // What this gateway has in flight there is a floor the report (taken a scrape ago) may be below.
  const reported = report.waiting + report.running + b.sentSinceReport
  return Math.max(reported, b.inFlight)
}

function capacityOf(b: BackendState): number {
  return b.maxConcurrency ?? b.weight
}
