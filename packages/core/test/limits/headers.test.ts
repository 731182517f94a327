import { afterEach, describe, expect, it } from 'vitest'
import {
  defaultRejectionBody,
  HEADER_MODES,
  type HeaderMode,
  type LimitDecision,
  MemoryStore,
  parseLimits,
  RateLimiter,
  writeRateLimitHeaders,
} from '../../src/internal.js'

const stores: MemoryStore[] = []
afterEach(() => {
  for (const store of stores.splice(0)) store.close()
})

function limiterAt(limits: string) {
  const clock = { now: 0 }
  const store = new MemoryStore({ now: () => clock.now })
  stores.push(store)
  const limiter = new RateLimiter(store, [{ scope: 'r', items: parseLimits(limits) }])
  const hit = (): LimitDecision => {
    const decision = limiter.hit('k', 1)
    if (decision instanceof Promise) throw new Error('memory store answered asynchronously')
    return decision
  }
  return { limiter, clock, hit }
}

function headersFor(decision: LimitDecision, mode: HeaderMode, policyHeader: string): Record<string, string> {
  const written: Record<string, string> = {}
  const target = { written }
  writeRateLimitHeaders(decision, mode, policyHeader, target, (t, name, value) => {
    if (name in t.written) throw new Error(`${name} written twice`)
    t.written[name] = value
  })
  return written
}

describe('writeRateLimitHeaders', () => {
  it('lists the header modes the options accept', () => {
    expect(HEADER_MODES).toEqual(['ietf', 'legacy', 'both', false])
  })

  it('ietf: RateLimit-Policy with every window and RateLimit for the binding one', () => {
    const { limiter, hit } = limiterAt('50 per hour, 200 per day')
    expect(headersFor(hit(), 'ietf', limiter.policyHeader)).toEqual({
      'ratelimit-policy': '"50-per-hour";q=50;w=3600, "200-per-day";q=200;w=86400',
      ratelimit: '"50-per-hour";r=49;t=3600',
    })
  })

  it('legacy: only the X-RateLimit trio, reset in seconds from now', () => {
    const { limiter, hit } = limiterAt('50 per hour, 200 per day')
    expect(headersFor(hit(), 'legacy', limiter.policyHeader)).toEqual({
      'x-ratelimit-limit': '50',
      'x-ratelimit-remaining': '49',
      'x-ratelimit-reset': '3600',
    })
  })

  it('both: the IETF fields and the legacy trio', () => {
    const { limiter, hit } = limiterAt('50 per hour')
    expect(headersFor(hit(), 'both', limiter.policyHeader)).toEqual({
      'ratelimit-policy': '"50-per-hour";q=50;w=3600',
      ratelimit: '"50-per-hour";r=49;t=3600',
      'x-ratelimit-limit': '50',
      'x-ratelimit-remaining': '49',
      'x-ratelimit-reset': '3600',
    })
  })

  it('false: writes nothing', () => {
    const { limiter, hit } = limiterAt('50 per hour')
    expect(headersFor(hit(), false, limiter.policyHeader)).toEqual({})
  })

  it('describes the window that rejected, with 0 remaining and the time to its reset rounded up', () => {
    const { limiter, hit, clock } = limiterAt('2 per minute, 100 per day')
    hit()
    hit()
    clock.now += 20_500
    const rejected = hit()
    expect(rejected.allowed).toBe(false)
    expect(headersFor(rejected, 'both', limiter.policyHeader)).toEqual({
      'ratelimit-policy': '"2-per-minute";q=2;w=60, "100-per-day";q=100;w=86400',
      ratelimit: '"2-per-minute";r=0;t=40',
      'x-ratelimit-limit': '2',
      'x-ratelimit-remaining': '0',
      'x-ratelimit-reset': '40',
    })
  })

  it('follows the binding window as it changes', () => {
    const { limiter, hit } = limiterAt('10 per minute, 3 per hour')
    expect(headersFor(hit(), 'ietf', limiter.policyHeader).ratelimit).toBe('"3-per-hour";r=2;t=3600')
  })
})

describe('defaultRejectionBody', () => {
  it('is an OpenAI-style error that names the limit and the wait', () => {
    const { hit } = limiterAt('1 per hour')
    hit()
    const rejected = hit()
    expect(defaultRejectionBody(rejected)).toEqual({
      error: {
        message: 'Rate limit exceeded: 1 per hour. Retry in 3600 s.',
        type: 'rate_limit_exceeded',
        code: 'rate_limit_exceeded',
        limit: '1 per hour',
        retry_after: 3600,
      },
    })
  })

  it('survives JSON serialization unchanged', () => {
    const { hit } = limiterAt('50 per hour, 1 per 5 seconds')
    hit()
    const body = defaultRejectionBody(hit())
    expect(JSON.parse(JSON.stringify(body))).toEqual(body)
    expect(body).toMatchObject({ error: { limit: '1 per 5 seconds', retry_after: 5 } })
  })
})
