import { describe, expect, it } from 'vitest'
import { missingTools } from './lib/tools.js'

describe('the benchmarks’ tool check', () => {
  it('names each missing program, the suites that need it and the Debian packages to install', () => {
    const installed = new Set(['nginx'])
    const missing = missingTools(['rate-limit', 'forward', 'balance'], (name) => installed.has(name))
    expect(missing?.tools).toEqual(['wrk', 'haproxy'])
    expect(missing?.message).toContain('wrk (needed by rate-limit, forward)')
    expect(missing?.message).toContain('haproxy (needed by balance)')
    expect(missing?.message).toContain('apt-get install -y wrk haproxy')
    expect(missing?.message).toContain('--only latency')
  })

  it('says nothing when every program is there', () => {
    expect(missingTools(['rate-limit', 'forward', 'latency', 'balance'], () => true)).toBeNull()
  })
})
