import { describe, expect, it } from 'vitest'
import type { BackendState } from '../../src/balance/backend-state.js'
import { ConsistentHashPicker } from '../../src/balance/pickers/consistent-hash.js'
import { BackendRegistry } from '../../src/balance/registry.js'
import { backendConfigs, countPicks } from './helpers.js'

const keys = Array.from({ length: 2000 }, (_, i) => `conversation-${i}`)

function assign(picker: ConsistentHashPicker, registry: BackendRegistry, candidates = registry.list()) {
  return new Map(keys.map((key) => [key, picker.pick(candidates, { hashKey: key }, registry)?.id]))
}

describe('consistent hash with bounded loads', () => {
  it('sends the same key to the same backend', () => {
    const registry = new BackendRegistry(backendConfigs([1, 1, 1, 1]))
    const picker = new ConsistentHashPicker()
    const first = assign(picker, registry)
    expect(assign(picker, registry)).toEqual(first)
    // A fresh picker over the same backends agrees: the ring depends only on ids and weights.
    expect(assign(new ConsistentHashPicker(), registry)).toEqual(first)
  })

  it('spreads keys across backends in proportion to weight', () => {
    const registry = new BackendRegistry(backendConfigs([1, 1, 2]))
    const counts = countPicks(
      keys.map((key) => new ConsistentHashPicker().pick(registry.list(), { hashKey: key }, registry)),
    )
    expect(counts.A! / keys.length).toBeGreaterThan(0.15)
    expect(counts.B! / keys.length).toBeGreaterThan(0.15)
    expect(counts.C! / keys.length).toBeGreaterThan(0.4)
    expect(counts.C! / keys.length).toBeLessThan(0.6)
  })

  it('remaps only the keys of a removed backend', () => {
    const registry = new BackendRegistry(backendConfigs([1, 2, 1, 1]))
    const picker = new ConsistentHashPicker()
    const before = assign(picker, registry)
    registry.remove('B')
    const after = assign(picker, registry)
    let moved = 0
    for (const key of keys) {
      if (before.get(key) === 'B') {
        expect(after.get(key)).not.toBe('B')
        moved++
      } else {
        expect(after.get(key)).toBe(before.get(key))
      }
    }
    expect(moved).toBeGreaterThan(0)
    // Adding it back returns exactly the old assignment.
    registry.add(backendConfigs([1, 2])[1]!)
    expect(assign(picker, registry)).toEqual(before)
  })

  it('keeps keys of other backends in place when one is not a candidate (ejected, excluded)', () => {
    const registry = new BackendRegistry(backendConfigs([1, 1, 1]))
    const picker = new ConsistentHashPicker()
    const before = assign(picker, registry)
    const after = assign(
      picker,
      registry,
      registry.list().filter((b) => b.id !== 'A'),
    )
    for (const key of keys) {
      if (before.get(key) !== 'A') expect(after.get(key)).toBe(before.get(key))
      else expect(after.get(key)).not.toBe('A')
    }
  })

  it('spills over past the sticky backend when it is above its bounded load', () => {
    const registry = new BackendRegistry(backendConfigs([1, 1, 1, 1]))
    const picker = new ConsistentHashPicker({ loadFactor: 0.25 })
    const list = registry.list()
    const key = 'conversation-42'
    const sticky = picker.pick(list, { hashKey: key }, registry) as BackendState

    // Total in flight 4 (all on sticky): bound = ceil(1.25 × 5 / 4) = 2; sticky would be at 5.
    sticky.inFlight = 4
    const spilled = picker.pick(list, { hashKey: key }, registry) as BackendState
    expect(spilled).not.toBe(sticky)
    // The spill target is stable too: the next backend along the ring.
    expect(picker.pick(list, { hashKey: key }, registry)).toBe(spilled)

    // Back under the bound, the key returns to its sticky backend.
    for (const b of list) b.inFlight = 1 // bound = ceil(1.25 × 5 / 4) = 2
    expect(picker.pick(list, { hashKey: key }, registry)).toBe(sticky)
  })

  it('never lets a backend exceed ceil((1 + ε) × average) while requests pile up', () => {
    const registry = new BackendRegistry(backendConfigs([1, 1, 1, 1]))
    const picker = new ConsistentHashPicker({ loadFactor: 0.25 })
    const list = registry.list()
    // Everyone asks with the same key: the worst case for plain consistent hashing.
    for (let total = 0; total < 100; total++) {
      const b = picker.pick(list, { hashKey: 'hot' }, registry) as BackendState
      b.inFlight++
      for (const x of list) expect(x.inFlight).toBeLessThanOrEqual(Math.ceil((1.25 * (total + 1)) / 4))
    }
  })

  it('falls back to least connections without a key', () => {
    const registry = new BackendRegistry(backendConfigs([1, 1, 1]))
    const list = registry.list()
    ;(list[0] as BackendState).inFlight = 3
    ;(list[1] as BackendState).inFlight = 3
    expect(new ConsistentHashPicker().pick(list, {}, registry)?.id).toBe('C')
  })
})
