import { describe, expect, it } from 'vitest'
import { parseDurationMs, parseWrkOutput } from './lib/wrk.js'

const sample = `Running 2s test @ http://127.0.0.1:40000/limited
  1 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.71ms  745.12us  14.20ms   87.32%
    Req/Sec    18.62k     1.10k   19.98k    80.00%
  Latency Distribution
     50%    2.58ms
     75%    2.90ms
     90%    3.41ms
     99%    5.62ms
  37043 requests in 2.00s, 6.64MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 5
Requests/sec:  18514.36
Transfer/sec:      3.32MB
`

describe('parseWrkOutput', () => {
  it('reads throughput, count, latency percentiles and failures', () => {
    expect(parseWrkOutput(sample)).toEqual({
      requests: 37043,
      durationMs: 2000,
      requestsPerSecond: 18514.36,
      latencyMs: { p50: 2.58, p75: 2.9, p90: 3.41, p99: 5.62 },
      non2xx: 5,
      socketErrors: { connect: 0, read: 2, write: 0, timeout: 1 },
    })
  })

  it('counts no failures when wrk prints none', () => {
    const clean = sample
      .split('\n')
      .filter((l) => !l.includes('Socket errors') && !l.includes('Non-2xx'))
      .join('\n')
    const r = parseWrkOutput(clean)
    expect(r.non2xx).toBe(0)
    expect(r.socketErrors).toEqual({ connect: 0, read: 0, write: 0, timeout: 0 })
  })

  it('fails loudly on output it does not understand', () => {
    expect(() => parseWrkOutput('unable to connect to 127.0.0.1:1 Connection refused')).toThrow(/wrk/)
  })
})

describe('parseDurationMs', () => {
  it('converts wrk units to milliseconds', () => {
    expect(parseDurationMs('850.00us')).toBeCloseTo(0.85, 10)
    expect(parseDurationMs('1.50ms')).toBe(1.5)
    expect(parseDurationMs('2.01s')).toBeCloseTo(2010, 9)
    expect(parseDurationMs('1.00m')).toBe(60_000)
    expect(parseDurationMs('fast')).toBeNaN()
  })
})
