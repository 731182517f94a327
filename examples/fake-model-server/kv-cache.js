/**
 * The KV cache of a paged-attention server, as vLLM keeps it: one fixed pool of blocks of
 * `blockSize` tokens. Running sequences hold blocks; a block they give back keeps its contents, so a
 * later prompt that starts the same way finds its prefix already computed (automatic prefix caching)
 * until the pool needs the block for something else. The pool is the prefix cache's only bound, as in
 * vLLM: a busy server forgets prefixes sooner.
 */
import { createHash } from 'node:crypto'

export { CHARS_PER_TOKEN } from './tokenizer.js'

/**
 * Chained block hashes of a prompt's full blocks of token ids: block i's hash covers every token
 * before it, so two prompts share block i only if they agree on everything up to its end (vLLM
 * hashes blocks the same way, with a hash function and seed of its own).
 * @param {number[]} tokens the prompt's token ids
 * @param {number} blockSize tokens a block
 * @returns {string[]}
 */
export function blockHashes(tokens, blockSize) {
  const count = Math.floor(tokens.length / blockSize)
  const hashes = new Array(count)
  let previous = ''
  for (let i = 0; i < count; i++) {
    const block = Uint32Array.from(tokens.slice(i * blockSize, (i + 1) * blockSize))
    previous = createHash('sha1').update(previous).update(new Uint8Array(block.buffer)).digest('base64')
    hashes[i] = previous
  }
  return hashes
}

export class KvCache {
  /** @param {number} totalBlocks @param {number} blockSize @param {boolean} prefixCaching */
  constructor(totalBlocks, blockSize, prefixCaching) {
    this.totalBlocks = totalBlocks
    this.blockSize = blockSize
    this.prefixCaching = prefixCaching
    /** @type {Map<string, number>} hash → block that holds it */
    this.byHash = new Map()
    /** @type {(string | undefined)[]} */
    this.hashOf = []
    /** @type {number[]} */
    this.refs = []
    /** Free blocks that hold nothing worth keeping; handed out first. @type {number[]} */
    this.empty = []
    /** Free blocks that still hold a cached prefix, least recently freed first (eviction order). @type {Set<number>} */
    this.cached = new Set()
    /** Blocks never handed out yet: the pool is allocated lazily so a huge pool costs nothing. */
    this.fresh = 0
    /** Indexes (into the hashes) of the blocks the last `allocate` registered for reuse. @type {number[]} */
    this.lastStored = []
    /** Told of each cached block the pool evicts, for the KV-event feed. @type {((hash: string) => void) | null} */
    this.onEvict = null
  }

  get usedBlocks() {
    return this.totalBlocks - this.freeBlocks
  }

  get freeBlocks() {
    return this.totalBlocks - this.fresh + this.empty.length + this.cached.size
  }

  /** Fraction of blocks held by running sequences: what vLLM reports as `kv_cache_usage_perc`. */
  get usage() {
    return this.usedBlocks / this.totalBlocks
  }

  /** @param {number} tokens */
  blocksFor(tokens) {
    return Math.ceil(tokens / this.blockSize)
  }

  /**
   * How many leading blocks are cached, of at most `limit`. vLLM always recomputes a prompt's last
   * token (the model needs its logits), so the caller passes ⌊(prompt tokens − 1) / blockSize⌋.
   * @param {string[]} hashes @param {number} limit
   */
  hits(hashes, limit) {
    if (!this.prefixCaching) return 0
    const end = Math.min(limit, hashes.length)
    let n = 0
    while (n < end && this.byHash.has(/** @type {string} */ (hashes[n]))) n++
    return n
  }

  /**
   * Whether a sequence of `tokens` tokens whose first `hits` blocks are cached fits now. A cached
   * block held by another sequence is shared for free; one sitting in the free pool leaves it.
   * @param {string[]} hashes @param {number} hits @param {number} tokens
   */
  fits(hashes, hits, tokens) {
    let shared = 0
    for (let i = 0; i < hits; i++) {
      const block = /** @type {number} */ (this.byHash.get(/** @type {string} */ (hashes[i])))
      if ((this.refs[block] ?? 0) > 0) shared++
    }
    return this.blocksFor(tokens) - shared <= this.freeBlocks
  }

  /**
   * Takes the blocks for a sequence (call `fits` first) and registers its full prompt blocks for reuse.
   * @param {string[]} hashes @param {number} hits @param {number} tokens
   * @returns {number[]} the blocks, to give back with `release`
   */
  allocate(hashes, hits, tokens) {
    const count = this.blocksFor(tokens)
    const blocks = new Array(count)
    this.lastStored.length = 0
    for (let i = 0; i < hits; i++) {
      const block = /** @type {number} */ (this.byHash.get(/** @type {string} */ (hashes[i])))
      if ((this.refs[block] ?? 0) === 0) this.cached.delete(block)
      this.refs[block] = (this.refs[block] ?? 0) + 1
      blocks[i] = block
    }
    for (let i = hits; i < count; i++) {
      const block = this.take()
      this.refs[block] = 1
      blocks[i] = block
      const hash = this.prefixCaching ? hashes[i] : undefined
      if (hash !== undefined && !this.byHash.has(hash)) {
        this.byHash.set(hash, block)
        this.hashOf[block] = hash
        this.lastStored.push(i)
      }
    }
    return blocks
  }

  /**
   * Gives a sequence's blocks back, last block first, so the end of a prompt is forgotten before its
   * beginning, which more prompts share (vLLM frees in the same order for the same reason).
   * @param {number[]} blocks
   */
  release(blocks) {
    for (let i = blocks.length - 1; i >= 0; i--) {
      const block = /** @type {number} */ (blocks[i])
      const refs = (this.refs[block] ?? 1) - 1
      this.refs[block] = refs
      if (refs > 0) continue
      if (this.hashOf[block] !== undefined) this.cached.add(block)
      else this.empty.push(block)
    }
  }

  /** @returns {number} */
  take() {
    if (this.fresh < this.totalBlocks) return this.fresh++
    const empty = this.empty.pop()
    if (empty !== undefined) return empty
    // Evict the least recently freed cached block.
    const [oldest] = this.cached
    const block = /** @type {number} */ (oldest)
    this.cached.delete(block)
    const hash = /** @type {string} */ (this.hashOf[block])
    this.byHash.delete(hash)
    this.hashOf[block] = undefined
    this.onEvict?.(hash)
    return block
  }
}
