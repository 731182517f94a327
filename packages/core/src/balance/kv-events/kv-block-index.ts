import { chainKey, ROOT_KEY } from './block-keys.js'
import type { EngineBlockHash, KvEvent } from './event-decoder.js'

/** What one backend's index holds and how its feed went, for snapshots and metrics. */
export interface KvIndexStats {
  /** Blocks indexed now. */
  blocks: number
  /** Block size the engine reported (tokens per block); null before its first BlockStored. */
  blockSize: number | null
  /** Stored blocks not indexed: their parent was unknown here, or tokens alone do not name them. */
  skippedBlocks: number
  /** Blocks forgotten to stay within `maxBlocks` while the engine may still hold them. */
  overflowBlocks: number
}

/**
 * The blocks one engine holds on its GPU, by our own chained keys (block-keys.ts), built from its
 * KV events. The engine's hash of each block maps to our key so that BlockRemoved, which names
 * only engine hashes, can be applied. Bounded by `maxBlocks`: past it the oldest stored block is
 * forgotten, which can only make a backend look as if it held less than it does.
 *
 * The state is two maps per backend, keyed by numbers and engine hashes: a shared store (Redis)
 * can hold the same two tables, keyed by backend.
 */
export class KvBlockIndex {
  // Map iteration follows insertion order: the first engine hash is the oldest stored block.
  readonly #byEngineHash = new Map<EngineBlockHash, number>()
  // Our key → how many engine blocks carry it (a block stored twice under different engine hashes).
  readonly #keys = new Map<number, number>()
  readonly #maxBlocks: number
  #blockSize: number | null = null
  #skipped = 0
  #overflow = 0

  constructor(maxBlocks: number) {
    this.#maxBlocks = maxBlocks
  }

  get blockSize(): number | null {
    return this.#blockSize
  }

  get size(): number {
    return this.#byEngineHash.size
  }

  stats(): KvIndexStats {
    return {
      blocks: this.#byEngineHash.size,
      blockSize: this.#blockSize,
      skippedBlocks: this.#skipped,
      overflowBlocks: this.#overflow,
    }
  }

  /** How many leading keys of the request this engine holds. */
  matchLength(keys: Float64Array, count: number): number {
    const held = this.#keys
    for (let i = 0; i < count; i++) if (!held.has(keys[i] as number)) return i
    return count
  }

  apply(event: KvEvent): void {
    switch (event.type) {
      case 'BlockStored':
        this.#stored(event)
        return
      case 'BlockRemoved':
        // Only the GPU copy counts: a block offloaded elsewhere must be loaded back before use.
        if (!onGpu(event.medium)) return
        for (const hash of event.blockHashes) this.#remove(hash)
        return
      case 'AllBlocksCleared':
        this.clear()
        return
    }
  }

  /** Forgets everything: the engine cleared its cache, or events were lost and the view is unknown. */
  clear(): void {
    this.#byEngineHash.clear()
    this.#keys.clear()
  }

  #stored(event: Extract<KvEvent, { type: 'BlockStored' }>): void {
    if (!onGpu(event.medium)) return
    const { blockHashes, tokenIds, blockSize } = event
    this.#blockSize = blockSize
    let parent = ROOT_KEY
    if (event.parent !== null) {
      const known = this.#byEngineHash.get(event.parent)
      if (known === undefined) {
        this.#skipped += blockHashes.length
        return
      }
      parent = known
    }
    if (event.keyedBeyondTokens || tokenIds.length < blockHashes.length * blockSize) {
      this.#skipped += blockHashes.length
      return
    }
    for (let i = 0; i < blockHashes.length; i++) {
      const key = chainKey(parent, tokenIds, i * blockSize, (i + 1) * blockSize)
      this.#add(blockHashes[i] as EngineBlockHash, key)
      parent = key
    }
    while (this.#byEngineHash.size > this.#maxBlocks) {
      const oldest = this.#byEngineHash.keys().next()
      if (oldest.done) break
      this.#remove(oldest.value)
      this.#overflow++
    }
  }

  #add(hash: EngineBlockHash, key: number): void {
    if (this.#byEngineHash.has(hash)) this.#remove(hash)
    this.#byEngineHash.set(hash, key)
    this.#keys.set(key, (this.#keys.get(key) ?? 0) + 1)
  }

  #remove(hash: EngineBlockHash): void {
    const key = this.#byEngineHash.get(hash)
    if (key === undefined) return
    this.#byEngineHash.delete(hash)
    const count = this.#keys.get(key) ?? 0
    if (count <= 1) this.#keys.delete(key)
    else this.#keys.set(key, count - 1)
  }
}

function onGpu(medium: string | null): boolean {
  return medium === null || medium === 'GPU'
}
