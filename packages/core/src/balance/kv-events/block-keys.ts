/**
 * Our own chained key of a block of token ids, computed the same way from an engine's
 * `BlockStored` events and from a request's tokens. The engine's hashes are not used for lookup
 * (llm-d's indexer does the same): vLLM hashes with a function and seed of its own choosing that
 * a router cannot reproduce, and which change between versions; token ids do not.
 *
 * A key covers its parent's key and the block's tokens, so holding block k's key means holding
 * the whole prefix up to k. Two 32-bit FNV-1a streams make one 53-bit key (a JS number, exact):
 * one 32-bit hash over hundreds of thousands of blocks would collide often enough to fake matches.
 */

/** The parent key of a chain's first block. */
export const ROOT_KEY = 0

export function chainKey(parent: number, tokens: ArrayLike<number>, start: number, end: number): number {
  let h1 = (Math.floor(parent / 0x200000) ^ 0x811c9dc5) >>> 0
  let h2 = ((parent % 0x200000) ^ 0x050c5d1f) >>> 0
  for (let i = start; i < end; i++) {
    const t = (tokens[i] as number) | 0
    h1 = Math.imul(h1 ^ (t & 0xffff), 0x01000193)
    h1 = Math.imul(h1 ^ (t >>> 16), 0x01000193)
    h2 = Math.imul(h2 ^ t, 0x01000193) ^ (h2 >>> 15)
  }
  return (h1 >>> 0) * 0x200000 + ((h2 >>> 0) & 0x1fffff)
}

/**
 * The keys of a request's full blocks of `blockSize` tokens (a trailing partial block is left
 * out: engines cache only full blocks), at most `out.length`; returns how many were written.
 */
export function requestBlockKeys(tokens: ArrayLike<number>, blockSize: number, out: Float64Array): number {
  const blocks = Math.min(Math.floor(tokens.length / blockSize), out.length)
  let key = ROOT_KEY
  for (let b = 0; b < blocks; b++) {
    key = chainKey(key, tokens, b * blockSize, (b + 1) * blockSize)
    out[b] = key
  }
  return blocks
}
