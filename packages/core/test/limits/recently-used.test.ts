import { describe, expect, it } from 'vitest'
import { RecentlyUsed } from '../../src/limits/recently-used.js'

describe('RecentlyUsed', () => {
  it('makes each value once, and drops the least recently used at capacity', () => {
    const made: string[] = []
    const cache = new RecentlyUsed<string>(2)
    const make = (key: string) => {
      made.push(key)
      return key.toUpperCase()
    }
    expect(cache.get('a', make)).toBe('A')
    expect(cache.get('b', make)).toBe('B')
    expect(cache.get('a', make)).toBe('A')
    // 'b' is now the least recently used, so 'c' pushes it out and 'a' stays.
    cache.get('c', make)
    cache.get('a', make)
    cache.get('b', make)
    expect(made).toEqual(['a', 'b', 'c', 'b'])
  })

  it('keeps null as a value rather than making it again', () => {
    let calls = 0
    const cache = new RecentlyUsed<null>(4)
    cache.get('x', () => {
      calls++
      return null
    })
    cache.get('x', () => {
      calls++
      return null
    })
    expect(calls).toBe(1)
  })
})
