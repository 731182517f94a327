import { optionNames } from '../../option-names.js'
import { checkNumber } from '../../validation.js'
import type { BackendState } from '../backend-state.js'
import { reportedLoad } from '../load.js'
import {
  batchSlotsOf,
  capacityOf,
  expectedWaitMs,
  loadOf,
  PrefillCost,
  queuePosition,
  withinLoadBound,
} from '../prefill-cost.js'
import { hashPromptBlocks, PrefixIndex } from '../prefix-index.js'
import type { BackendMembers } from '../registry.js'
import type { AttemptOutcome, PickContext } from '../types.js'
import { hash32, mix32 } from './hash.js'
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
 * the bound and a cold prefill elsewhere is expected to be quicker than waiting for it. A prompt
 * nobody holds is placed by load, then on the backend holding the fewest blocks, so new
 * conversations spread. A spill is recorded as a guest, not a new home (see `PrefixIndex`).
 */
export class PrefixAffinityPicker implements Picker {
  readonly name = 'prefix-affinity'
  readonly blockChars: number
  readonly maxBlocks: number
  readonly indexBlocks: number
  readonly loadFactor: number
  readonly #byLoad = new LeastConnectionsPicker(reportedLoad, 'least-load')
  readonly #backends = new WeakMap<BackendState, BackendPrefixState>()
  readonly #prefill = new PrefillCost()
  // Reused by every pick: the hashes of the current request's blocks.
  readonly #hashes: Float64Array
  #hits = 0
  #waits = 0
  #requests = 0
  #note = NO_NOTE
  // Blocks of the request being picked, in #hashes.
  #count = 0
  // The next pick's prompt when its blocks are in #hashes already (see `hashed`).
  #hashedPrompt: string | undefined
  #hashedCount = 0

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

  /**
   * Requests with prompt blocks; how many went to a backend holding a prefix of theirs (its home
   * or a guest); how many went home past the load bound or to a full batch, because waiting for it
   * was expected to beat a cold prefill elsewhere.
   */
  get stats(): { requests: number; affinityHits: number; waitedForHome: number } {
    return { requests: this.#requests, affinityHits: this.#hits, waitedForHome: this.#waits }
  }

  /** Milliseconds one uncached prompt block is learned to add to the first token; undefined until known. */
  get prefillMsPerBlock(): number | undefined {
    return this.#prefill.perBlockMs
  }

  /** What the last pick learns from when its attempt ends (see `attemptEnded`). */
  get pickNote(): number {
    return this.#note
  }

  /**
   * The next pick's prompt was hashed already (a shared routing state hashed it to look it up in
   * Redis): that pick copies the hashes instead of reading the prompt again. Only the pick that
   * comes next, and only for this very prompt.
   */
  hashed(prompt: string, hashes: Float64Array, count: number): void {
    const own = this.#hashes
    for (let i = 0; i < count; i++) own[i] = hashes[i] as number
    this.#hashedPrompt = prompt
    this.#hashedCount = count
  }

  pick(
    candidates: readonly BackendState[],
    ctx: PickContext,
    members?: BackendMembers,
  ): BackendState | undefined {
    this.#note = NO_NOTE
    const prompt = ctx.prompt
    const hashes = this.#hashes
    const hashedPrompt = this.#hashedPrompt
    this.#hashedPrompt = undefined
    const count =
      prompt === undefined
        ? 0
        : prompt === hashedPrompt
          ? this.#hashedCount
          : hashPromptBlocks(prompt, this.blockChars, this.maxBlocks, hashes)
    if (count === 0 || candidates.length === 0) return this.#byLoad.pick(candidates)
    this.#count = count
    this.#requests++
    let total = 1
    let capacity = 0
    for (const b of candidates) {
      total += loadOf(b)
      capacity += capacityOf(b)
    }
    // The longest match; between equal ones a home before a guest, then the less loaded.
    let preferred: BackendState | undefined
    let longest = 0
    let preferredIsHome = false
    for (const backend of candidates) {
      const index = this.#state(backend).index
      const length = index.matchLength(hashes, count)
      if (length === 0 || length < longest) continue
      const home = index.homeLength(hashes, length) === length
      if (
        length > longest ||
        (home && !preferredIsHome) ||
        (home === preferredIsHome && reportedLoad.compare(backend, preferred as BackendState) < 0)
      ) {
        preferred = backend
        longest = length
        preferredIsHome = home
      }
    }

    const chosen =
      preferred === undefined
        ? this.#place(candidates, undefined)
        : this.#decide(preferred, longest, candidates, count, total, capacity)
    const index = this.#state(chosen).index
    const matched = index.matchLength(hashes, count)
    const position = queuePosition(chosen, loadOf(chosen))
    if (position !== undefined && position <= 0) this.#note = count - matched + 1
    if (matched > 0) this.#hits++
    // A new prefix makes its first backend its home. A spill leaves it on its target as a guest:
    // it becomes a home only by holding a longer prefix than any home when the conversation returns.
    // A prefix whose home is out of the candidates (full, saturated, unhealthy) spilled too.
    const home =
      preferred === undefined
        ? members === undefined || !this.#heldOutside(candidates, members)
        : chosen === preferred
    index.record(hashes, count, home)
    return chosen
  }

  /**
   * Called by the balancer when an attempt this picker chose ends, with the note of that pick:
   * learns each backend's attempt duration and, from attempts that found a free slot, what a
   * cold block costs.
   */
  attemptEnded(backend: BackendState, note: number, outcome: AttemptOutcome, durationMs: number): void {
    if (!outcome.ok || outcome.cancelled) return
    const state = this.#state(backend)
    state.serviceMs =
      state.serviceMs === 0 ? durationMs : state.serviceMs + (durationMs - state.serviceMs) / 16
    // note - 1 is the number of uncached blocks at the pick; NO_NOTE: nothing to learn.
    if (note > 0) this.#prefill.observe(note - 1, durationMs)
  }

  /**
   * The preferred backend while it is within the bound and has a free slot. Otherwise, once the
   * price of a cold block and the backends' batch sizes are known, whichever candidate promises
   * the first token soonest (its wait for a slot plus the prefill of what it does not hold), the
   * preferred one on a tie; before that, the bound decides.
   */
  #decide(
    preferred: BackendState,
    longest: number,
    candidates: readonly BackendState[],
    count: number,
    total: number,
    capacity: number,
  ): BackendState {
    const load = loadOf(preferred)
    const withinBound = withinLoadBound(preferred, load, total, capacity, this.loadFactor)
    const position = queuePosition(preferred, load)
    if (withinBound && (position === undefined || position <= 0)) return preferred
    const perBlockMs = this.#prefill.perBlockMs
    const homeCost =
      perBlockMs === undefined ? undefined : this.#costOf(preferred, count - longest, perBlockMs)
    if (perBlockMs === undefined || homeCost === undefined) {
      return withinBound ? preferred : this.#place(candidates, preferred)
    }
    let best: BackendState | undefined
    let bestCost = Number.POSITIVE_INFINITY
    for (const b of candidates) {
      if (b === preferred) continue
      const uncached = count - this.#state(b).index.matchLength(this.#hashes, count)
      const cost = this.#costOf(b, uncached, perBlockMs) ?? uncached * perBlockMs
      if (cost < bestCost || (cost === bestCost && best !== undefined && this.#placeBefore(b, best))) {
        best = b
        bestCost = cost
      }
    }
    if (best === undefined || homeCost <= bestCost) {
      if (!withinBound || (position !== undefined && position > 0)) this.#waits++
      return preferred
    }
    return best
  }

  /**
   * Expected ms to the first token on `b`, counting the delay a cold prefill there adds to the
   * requests it runs beside; undefined when its batch size or attempt time is unknown.
   */
  #costOf(b: BackendState, uncachedBlocks: number, perBlockMs: number): number | undefined {
    const load = loadOf(b)
    const slots = batchSlotsOf(b)
    // An engine prefills in the same batches as it decodes, so each request running beside a cold
    // prefill waits through it too (on llama-server, 8-token answers took a median 226 ms beside
    // one against 118 ms otherwise); the learned slope sees only the request's own share.
    const beside = Math.min(load, slots === undefined ? load : slots - 1)
    const prefill = uncachedBlocks * perBlockMs * (1 + beside)
    if (slots === undefined) return load === 0 ? prefill : undefined
    const position = load + 1 - slots
    if (position <= 0) return prefill
    const serviceMs = this.#state(b).serviceMs
    return serviceMs === 0 ? undefined : expectedWaitMs(position, slots, serviceMs) + prefill
  }

  /** Where a prefix goes when its home cannot take it, or when it has none: see `#placeBefore`. */
  #place(candidates: readonly BackendState[], skip: BackendState | undefined): BackendState {
    let best: BackendState | undefined
    for (const b of candidates) {
      if (b === skip) continue
      if (best === undefined || this.#placeBefore(b, best)) best = b
    }
    return best ?? (candidates[0] as BackendState)
  }

  /**
   * Fewer requests per unit of capacity first; then the longer part of the prompt held (a spill
   * goes to a server that already has the prompt as a guest); then fewer blocks held per unit of
   * capacity, so that conversations opened one after another on an idle pool spread instead of
   * following whichever server answered fastest; then a hash of the prefix and the backend
   * (rendezvous hashing), so the order does not depend on the order of the candidates.
   */
  #placeBefore(a: BackendState, b: BackendState): boolean {
    const ca = capacityOf(a)
    const cb = capacityOf(b)
    const byLoad = loadOf(a) / ca - loadOf(b) / cb
    if (byLoad !== 0) return byLoad < 0
    const sa = this.#state(a)
    const sb = this.#state(b)
    const hashes = this.#hashes
    const byMatch = sa.index.matchLength(hashes, this.#count) - sb.index.matchLength(hashes, this.#count)
    if (byMatch !== 0) return byMatch > 0
    const byHeld = sa.index.size / ca - sb.index.size / cb
    if (byHeld !== 0) return byHeld < 0
    const prefix = (this.#hashes[0] as number) % 0x100000000
    // mix32 spreads `idHash ^ prefix`, so nearby prefixes order backends differently.
    return mix32(sa.idHash ^ prefix) > mix32(sb.idHash ^ prefix)
  }

  /** The prefix blocks this picker knows `backend` holds; a shared routing state adds the other replicas' to it. */
  indexOf(backend: BackendState): PrefixIndex {
    return this.#state(backend).index
  }

  /** Whether a registered backend that is not a candidate holds a prefix of the current request. */
  #heldOutside(candidates: readonly BackendState[], members: BackendMembers): boolean {
    for (const b of members.list()) {
      const state = this.#backends.get(b)
      if (state === undefined || candidates.includes(b)) continue
      if (state.index.homeLength(this.#hashes, this.#count) > 0) return true
    }
    return false
  }

  #state(backend: BackendState): BackendPrefixState {
    let state = this.#backends.get(backend)
    if (state === undefined) {
      state = { index: new PrefixIndex(this.indexBlocks), serviceMs: 0, idHash: hash32(backend.id) }
      this.#backends.set(backend, state)
    }
    return state
  }
}

interface BackendPrefixState {
  readonly index: PrefixIndex
  /** Mean duration of its attempts, dispatch to end (ms, moving average); 0 until one ended. */
  serviceMs: number
  readonly idHash: number
}

const NO_NOTE = 0
