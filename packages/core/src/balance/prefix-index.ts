/**
 * Prefix blocks of a prompt and, per backend, which of them it served lately.
 *
 * A prompt is cut into blocks of `blockChars` characters (a trailing partial block is left out,
 * as a server's prefix cache keeps only full blocks) and each block's hash covers every block
 * before it, so a backend holding block k's hash held the whole prefix up to k: matching a prefix
 * is one lookup per block, stopping at the first miss.
 */
export function hashPromptBlocks(
  prompt: string,
  blockChars: number,
  maxBlocks: number,
  out: Float64Array,
): number {
  const blocks = Math.min(Math.floor(prompt.length / blockChars), maxBlocks, out.length)
  // Two 32-bit FNV-1a streams with different offsets, joined into one 53-bit key: one 32-bit hash
  // over tens of thousands of indexed blocks would collide often enough to fake matches.
  let h1 = 0x811c9dc5
  let h2 = 0x050c5d1f
  let at = 0
  for (let block = 0; block < blocks; block++) {
    const end = at + blockChars
    for (; at < end; at++) {
      const c = prompt.charCodeAt(at)
      h1 = Math.imul(h1 ^ c, 0x01000193)
      h2 = Math.imul(h2 ^ c, 0x01000193) ^ (h2 >>> 15)
    }
    out[block] = (h1 >>> 0) * 0x200000 + ((h2 >>> 0) & 0x1fffff)
  }
  return blocks
}

/**
 * One backend's recently served prefix blocks, LRU-bounded. A block is held either as a home
 * (the backend was chosen for that prefix) or as a guest (a request spilled there while the home
 * was busy): both are in the server's cache, but only a home competes for the prefix's next
 * requests, so one spill does not split a prompt's traffic, and its cache, over two servers.
 */
export class PrefixIndex {
  // A Map iterates in insertion order: re-inserting on use makes its first key the least recent.
  // The value is HOME or GUEST.
  readonly #blocks = new Map<number, number>()
  readonly #capacity: number

  constructor(capacity: number) {
    this.#capacity = capacity
  }

  get size(): number {
    return this.#blocks.size
  }

  /** How many leading blocks of `hashes` this backend holds, as a home or a guest. */
  matchLength(hashes: Float64Array, count: number): number {
    const blocks = this.#blocks
    for (let i = 0; i < count; i++) if (!blocks.has(hashes[i] as number)) return i
    return count
  }

  /** How many leading blocks of `hashes` this backend holds as their home. */
  homeLength(hashes: Float64Array, count: number): number {
    const blocks = this.#blocks
    for (let i = 0; i < count; i++) if (blocks.get(hashes[i] as number) !== HOME) return i
    return count
  }

  /**
   * Marks the blocks as served here, as their home or as a guest (a guest never demotes a home).
   * The last block goes in first, so the first blocks (shared by the most requests) are the most
   * recent and the last to be evicted: a chain always loses its tail before its head.
   */
  record(hashes: Float64Array, count: number, home = true): void {
    const blocks = this.#blocks
    for (let i = count - 1; i >= 0; i--) {
      const hash = hashes[i] as number
      const held = blocks.get(hash)
      if (held !== undefined) blocks.delete(hash)
      blocks.set(hash, home || held === HOME ? HOME : GUEST)
    }
    while (blocks.size > this.#capacity) {
      const oldest = blocks.keys().next()
      if (oldest.done) break
      blocks.delete(oldest.value)
    }
  }
}

const HOME = 1
const GUEST = 2
