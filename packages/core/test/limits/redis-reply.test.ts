import { describe, expect, it } from 'vitest'
import { replyIntegers } from '../../src/limits/redis-reply.js'

describe('replyIntegers', () => {
  it('reads the integers of a status reply, negative ones included', () => {
    expect(replyIntegers('1 41 59000 1764633600123')).toEqual([1, 41, 59000, 1764633600123])
    expect(replyIntegers('-1 1764633600123')).toEqual([-1, 1764633600123])
    expect(replyIntegers('0')).toEqual([0])
  })

  it('refuses anything another script version or a rewriting proxy could send', () => {
    for (const reply of [[1, 2, 3], 'OK', '', '1  2', ' 1', '1 ', '1 -', '--1', '1-2', '1.5', 42, null]) {
      expect(() => replyIntegers(reply), JSON.stringify(reply)).toThrow(TypeError)
    }
    expect(() => replyIntegers([1, 2])).toThrow('an array of 2 items')
  })
})
