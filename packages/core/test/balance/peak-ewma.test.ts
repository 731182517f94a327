import { describe, expect, it } from 'vitest'
import { PeakEwma } from '../../src/balance/peak-ewma.js'

describe('peak-EWMA latency', () => {
  it('is unmeasured and 0 until the first sample, which it then takes as is', () => {
    const ewma = new PeakEwma(10_000)
    expect(ewma.measured).toBe(false)
    expect(ewma.value(0)).toBe(0)
    ewma.observe(120, 0)
    expect(ewma.measured).toBe(true)
    expect(ewma.value(0)).toBe(120)
  })

  it('jumps to a higher sample at once and decays toward lower ones over time', () => {
    const ewma = new PeakEwma(10_000)
    ewma.observe(100, 0)
    ewma.observe(900, 10)
    expect(ewma.value(10)).toBe(900)
    // A fast sample right after barely moves it: the peak is trusted until time passes.
    ewma.observe(100, 20)
    expect(ewma.value(20)).toBeGreaterThan(890)
    // One time constant later a fast sample pulls it most of the way down.
    ewma.observe(100, 10_020)
    expect(ewma.value(10_020)).toBeCloseTo(900 * Math.exp(-1) + 100 * (1 - Math.exp(-1)), -1)
  })

  it('fades without samples, so an idle slow backend gets probed again', () => {
    const ewma = new PeakEwma(10_000)
    ewma.observe(1000, 0)
    expect(ewma.value(10_000)).toBeCloseTo(1000 * Math.exp(-1), 6)
    expect(ewma.value(60_000)).toBeLessThan(5)
  })

  it('ignores nonsense samples', () => {
    const ewma = new PeakEwma()
    ewma.observe(Number.NaN, 0)
    ewma.observe(-5, 0)
    ewma.observe(Number.POSITIVE_INFINITY, 0)
    expect(ewma.measured).toBe(false)
  })
})
