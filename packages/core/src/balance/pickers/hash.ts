/**
 * 32-bit FNV-1a over UTF-16 code units, finished with murmur3's avalanche step: FNV alone maps
 * near-identical strings ("a#1", "a#2") to nearby values, which would cluster ring points.
 */
export function hash32(text: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  return mix32(h)
}

/** murmur3's finaliser: every input bit moves about half the output bits. */
export function mix32(x: number): number {
  let h = x >>> 0
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return h >>> 0
}
