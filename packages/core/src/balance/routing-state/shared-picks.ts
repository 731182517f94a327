import type { BackendState } from '../backend-state.js'
import type { Picker } from '../pickers/picker.js'
import { PrecisePrefixPicker } from '../pickers/precise-prefix.js'
import { PrefixAffinityPicker } from '../pickers/prefix-affinity.js'
import { hashPromptBlocks } from '../prefix-index.js'
import type { PickContext } from '../types.js'
import type { PromptBlocks, RoutingState, RoutingStateOptions, RoutingStateOwner } from './routing-state.js'
import { createRoutingState } from './routing-state-option.js'

/**
 * What a balancer does around a pick when its routing state is shared: before it, the other
 * replicas' counts and, for `prefix-affinity` (and `precise-prefix`'s fallback), which backends hold the prompt's blocks (added to
 * the picker's own index, so the picker itself reads one index); after it, the lease across
 * replicas and the blocks the pick left.
 */
export class SharedPicks {
  readonly state: RoutingState
  readonly #prefix: PrefixAffinityPicker | undefined

  constructor(option: RoutingStateOptions, picker: Picker, owner: RoutingStateOwner) {
    // precise-prefix shares its embedded prefix-affinity index; each replica subscribes to the KV
    // events itself (see DESIGN.md, "Precise prefix routing from KV-cache events").
    this.#prefix =
      picker instanceof PrefixAffinityPicker
        ? picker
        : picker instanceof PrecisePrefixPicker
          ? picker.approximate
          : undefined
    this.state = createRoutingState(option, owner, this.#prefix?.indexBlocks ?? 16_384)
  }

  /**
   * For a request the strategy routes by prefix: which backends hold its prompt's blocks, and the
   * counts of the backends that serve its model, read before the pick (one round trip). Resolves
   * with the blocks; never rejects. Undefined for any other request: its pick orders backends by
   * counts as fresh as the last answer from Redis, and waits for nothing.
   */
  view(ctx: PickContext, backends: readonly BackendState[]): Promise<PromptBlocks> | undefined {
    const model = ctx.model
    const count = this.#prefix === undefined || ctx.prompt === undefined ? 0 : backends.length
    const blocks = count === 0 ? undefined : this.#blocksOf(ctx.prompt as string, count)
    if (blocks === undefined) return undefined
    const serving: BackendState[] = []
    for (const b of backends) if (model === undefined || b.serves(model)) serving.push(b)
    return this.state.view(serving, blocks).then((answered) => {
      if (answered) this.#prime(serving, blocks)
      return blocks
    })
  }

  /** Adds what the shared index says of the prompt to the picker's own index, so the picker reads one. */
  #prime(serving: readonly BackendState[], blocks: PromptBlocks): void {
    const picker = this.#prefix as PrefixAffinityPicker
    const { hashes, count, matched, homes } = blocks
    for (let i = 0; i < serving.length; i++) {
      const index = picker.indexOf(serving[i] as BackendState)
      // Guest blocks first: recording a home never demotes, recording a guest never promotes.
      if ((matched[i] as number) > index.matchLength(hashes, count))
        index.record(hashes, matched[i] as number, false)
      if ((homes[i] as number) > index.homeLength(hashes, count))
        index.record(hashes, homes[i] as number, true)
    }
  }

  /** Right before the pick: the prompt's blocks, hashed for the view, spare the picker hashing it again. */
  picking(ctx: PickContext, blocks: PromptBlocks): void {
    this.#prefix?.hashed(ctx.prompt as string, blocks.hashes, blocks.count)
  }

  /** The lease at the chosen backend, recording the blocks there as the picker just did. */
  claim(
    backend: BackendState,
    candidates: readonly BackendState[],
    blocks: PromptBlocks | undefined,
  ): true | Promise<boolean> {
    const home =
      blocks !== undefined &&
      (this.#prefix as PrefixAffinityPicker).indexOf(backend).homeLength(blocks.hashes, blocks.count) ===
        blocks.count
    return this.state.claim(backend, candidates, blocks, home)
  }

  /**
   * The backend refused a lease: it is full across replicas even if this replica's view said
   * otherwise, until the next answer from the shared state says how full.
   */
  refused(backend: BackendState): void {
    const max = backend.maxConcurrency
    if (max !== null && backend.inFlight < max) {
      backend.shareCounts(max - backend.ownInFlight, backend.othersSent)
    }
  }

  #blocksOf(prompt: string, candidates: number): PromptBlocks | undefined {
    const picker = this.#prefix as PrefixAffinityPicker
    // Per request, not reused: requests interleave while they wait for Redis.
    const hashes = new Float64Array(picker.maxBlocks)
    const count = hashPromptBlocks(prompt, picker.blockChars, picker.maxBlocks, hashes)
    if (count === 0) return undefined
    let text = String(hashes[0])
    for (let i = 1; i < count; i++) text += ` ${hashes[i]}`
    return { hashes, count, text, matched: new Int32Array(candidates), homes: new Int32Array(candidates) }
  }
}
