import { describe, expect, it } from 'vitest'
import { replyIntegers } from '../../src/limits/redis-reply.js'
import { replyIntegerList } from './redis-helpers.js'

describe('replyIntegers', () => {
  it('reads the integers of a status reply, negative ones included', () => {
    expect(replyIntegerList('1 41 59000 1764633600123')).toEqual([1, 41, 59000, 1764633600123])
    expect(replyIntegerList('-1 1764633600123')).toEqual([-1, 1764633600123])
    expect(replyIntegerList('0')).toEqual([0])
  })

  it('writes into the array it is given and says how many it wrote, whatever the array held', () => {
    const values = [7, 7, 7, 7, 7]
    expect(replyIntegers('1 2', values)).toBe(2)
    expect(values.slice(0, 2)).toEqual([1, 2])
  })

  it('refuses anything another script version or a rewriting proxy could send', () => {
    for (const reply of [[1, 2, 3], 'OK', '', '1  2', ' 1', '1 ', '1 -', '--1', '1-2', '1.5', 42, null]) {
      expect(() => replyIntegerList(reply), JSON.stringify(reply)).toThrow(TypeError)
    }
    expect(() => replyIntegerList([1, 2])).toThrow('an array of 2 items')
  })
})
