import { describe, expect, it } from 'vitest'
import { paretoTokens } from '../examples/fake-model-server.js'
import { meanParetoTokens, meanServiceMs, poolCapacity, serverCapacity } from './lib/capacity.js'
import { seededRandom } from './lib/poisson.js'

describe('meanParetoTokens', () => {
  it('matches the mean of what paretoTokens draws', () => {
    const draw = paretoTokens(16, 1.5, 1000)
    const random = seededRandom(11)
    let sum = 0
    const n = 200_000
    for (let i = 0; i < n; i++) sum += draw(random)
    // Heavy tail: the sample mean wanders more than a normal one would; 3% is still far tighter than
    // the error of ignoring the floor and the cap.
    expect(sum / n / meanParetoTokens(16, 1.5, 1000)).toBeGreaterThan(0.97)
    expect(sum / n / meanParetoTokens(16, 1.5, 1000)).toBeLessThan(1.03)
  })

  it('is the minimum when the cap is the minimum, and checks its arguments', () => {
    expect(meanParetoTokens(10, 2, 10)).toBe(10)
    expect(() => meanParetoTokens(0, 1.5)).toThrow(RangeError)
    expect(() => meanParetoTokens(4, 0)).toThrow(RangeError)
  })
})

describe('capacity', () => {
  const server = { capacity: 4, ttftMs: 20, tptMs: 2, batchSlowdown: 0.1 }

  it('holds a place for ttft + (tokens - 1) × the per-token time at a full batch', () => {
    // per token at a batch of 4: 2 × (1 + 0.1 × 3) = 2.6 ms; 11 tokens: 20 + 10 × 2.6 = 46 ms
    expect(meanServiceMs(server, 11)).toBeCloseTo(46, 10)
    expect(serverCapacity(server, 11)).toBeCloseTo(4000 / 46, 10)
  })

  it('adds up over the pool', () => {
    const pool = [server, { ...server, capacity: 8 }]
    expect(poolCapacity(pool, 11)).toBeCloseTo(
      serverCapacity(pool[0]!, 11) + serverCapacity(pool[1]!, 11),
      10,
    )
  })
})
