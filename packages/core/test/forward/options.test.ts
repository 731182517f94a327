import { describe, expect, it } from 'vitest'
import { createForwarder } from '../../src/forward/forwarder.js'
import { UpstreamPools } from '../../src/forward/upstream-pools.js'
import { OptionError } from '../../src/validation.js'
import { RoundRobinTestBalancer } from './helpers.js'

const balancer = new RoundRobinTestBalancer([])

describe('createForwarder options', () => {
  it.each([
    [{ maxAttempts: 0 }, /maxAttempts.*0/],
    [{ maxAttempts: Number.POSITIVE_INFINITY }, /maxAttempts.*Infinity/],
    [{ maxReplayBodyBytes: -1 }, /maxReplayBodyBytes.*-1/],
    [{ maxBodyBytes: 1.5 }, /maxBodyBytes.*1\.5/],
    [{ connectTimeoutMs: 0 }, /connectTimeoutMs.*0/],
    [{ firstByteTimeoutMs: -5 }, /firstByteTimeoutMs.*-5/],
    [{ idleTimeoutMs: 2.5 }, /idleTimeoutMs.*2\.5/],
    [{ connectionsPerBackend: 0 }, /connectionsPerBackend.*0/],
    [{ retryBudget: { ratio: -0.5 } }, /ratio.*-0\.5/],
    [{ rewrite: { stripPrefix: 'gw' } }, /stripPrefix.*"gw"/],
    [{ uploadTimeoutMs: 0 }, /option "uploadTimeoutMs" must be an integer.*got 0/],
    [{ retryBudget: { percent: 20 } as never }, /unknown option "retryBudget\.percent"/],
  ])('rejects %j at creation', (options, message) => {
    expect(() => createForwarder({ balancer, ...options })).toThrow(OptionError)
    expect(() => createForwarder({ balancer, ...options })).toThrow(message)
  })

  it('needs a balancer', () => {
    expect(() => createForwarder({} as never)).toThrow(/balancer/)
  })

  it('takes timeouts on shared pools, not next to them', async () => {
    const pools = new UpstreamPools({ firstByteTimeoutMs: 1000 })
    expect(() => createForwarder({ balancer, pools, idleTimeoutMs: 5 })).toThrow(
      /idleTimeoutMs.*UpstreamPools/,
    )
    const forwarder = createForwarder({ balancer, pools, maxBodyBytes: Number.POSITIVE_INFINITY })
    await forwarder.close()
    await pools.close()
  })
})
