import { expect, vi } from 'vitest'

/**
 * The sizes a store shows from turns of the event loop its sweep has to share, until only `left`
 * counters remain: one synchronous pass would jump from every counter to `left` at once.
 */
export async function sizesWhileSweeping(store: { readonly size: number }, left: number): Promise<number[]> {
  const seen: number[] = []
  await vi.waitFor(
    async () => {
      await new Promise((resolve) => setImmediate(resolve))
      seen.push(store.size)
      expect(store.size).toBe(left)
    },
    { timeout: 5_000, interval: 0 },
  )
  return seen
}
