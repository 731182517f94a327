import { type LimitStore, MemoryStore } from '@tollgate/core'
import { afterEach, describe, expect, it } from 'vitest'
import type { Cleanup } from './cleanup.js'
import type { Answer } from './http.js'
import type { LimitedApp, StartLimited } from './rate-limit-suite.js'

/** A multiple of 10 s, so sliding-window buckets start on it. */
const T = 1_700_000_000_000

function rateLimit(res: Answer): { status: number; ratelimit: unknown; retryAfter: unknown } {
  return { status: res.status, ratelimit: res.headers.ratelimit, retryAfter: res.headers['retry-after'] }
}

/**
 * `limitStrategy` through both adapters on a memory store with a test clock: the status, the
 * `RateLimit` header and `Retry-After` of each request of a hand-computed schedule.
 */
export function describeLimitStrategies(framework: string, cleanup: Cleanup, startApp: StartLimited): void {
  afterEach(() => cleanup.run())
  let now = T
  const clocked = () => {
    now = T
    const store = new MemoryStore({ now: () => now })
    cleanup.add(() => store.close(), null)
    return store
  }
  async function at(app: LimitedApp, ms: number, path = '/a') {
    now = T + ms
    return rateLimit(await app.get(path))
  }
  const start = async (...args: Parameters<StartLimited> extends [Cleanup, ...infer Rest] ? Rest : never) => {
    const app = await startApp(cleanup, ...args)
    if (app === null) throw new Error('the app did not start')
    return app
  }

  describe(`${framework}: limit strategies`, () => {
    it('moving window: the plugin-wide strategy; a hit passes once the one 3 back is 10 s old', async () => {
      const app = await start({ store: clocked(), limitStrategy: 'moving-window' }, [
        { path: '/a', limit: '3 per 10 seconds' },
      ])
      const policy = '"3-per-10-seconds"'
      expect(await at(app, 0)).toEqual({
        status: 200,
        ratelimit: `${policy};r=2;t=10`,
        retryAfter: undefined,
      })
      expect(await at(app, 1_000)).toEqual({
        status: 200,
        ratelimit: `${policy};r=1;t=9`,
        retryAfter: undefined,
      })
      expect(await at(app, 2_000)).toEqual({
        status: 200,
        ratelimit: `${policy};r=0;t=8`,
        retryAfter: undefined,
      })
      expect(await at(app, 5_000)).toEqual({ status: 429, ratelimit: `${policy};r=0;t=5`, retryAfter: '5' })
      expect(await at(app, 10_000)).toEqual({
        status: 200,
        ratelimit: `${policy};r=0;t=1`,
        retryAfter: undefined,
      })
      // A fixed window restarted at 10 000 would let this one through; the moving window holds
      // hits at 1 000, 2 000 and 10 000 and frees a place at 11 000.
      expect(await at(app, 10_500)).toEqual({ status: 429, ratelimit: `${policy};r=0;t=1`, retryAfter: '1' })
      expect((await at(app, 11_000)).status).toBe(200)
    })

    it('sliding window counter: a route overrides the fixed-window default', async () => {
      const app = await start({ store: clocked() }, [
        { path: '/a', limit: { limits: '4 per 10 seconds', limitStrategy: 'sliding-window-counter' } },
        { path: '/fixed', limit: '4 per 10 seconds' },
      ])
      for (const ms of [0, 1_000, 2_000, 3_000]) expect((await at(app, ms)).status).toBe(200)
      // floor(previous × (10 000 − elapsed) / 10 000) + current stays 4 until 1 ms into the next bucket.
      expect(await at(app, 5_000)).toMatchObject({ status: 429, retryAfter: '6' })
      expect(await at(app, 10_000)).toMatchObject({ status: 429, retryAfter: '1' })
      expect(await at(app, 10_001)).toMatchObject({ status: 200 })
      // The other route counts fixed windows from its first hit.
      for (let i = 0; i < 4; i++) expect((await at(app, 10_001, '/fixed')).status).toBe(200)
      expect(await at(app, 10_001, '/fixed')).toMatchObject({ status: 429, retryAfter: '10' })
    })

    it('a store that cannot count by a strategy fails at startup naming the option', async () => {
      const fixedOnly: LimitStore = {
        hit: () => ({ allowed: true, used: [0], resetMs: [0] }),
        close: () => {},
      }
      await expect(
        start({ store: fixedOnly, limitStrategy: 'moving-window' }, [{ path: '/a', limit: '1 per second' }]),
      ).rejects.toThrow(/^tollgate: option "limitStrategy" must be "fixed-window" with this store/)
      await expect(
        start({ store: fixedOnly }, [
          { path: '/a', limit: { limits: '1/second', limitStrategy: 'sliding-window-counter' } },
        ]),
      ).rejects.toThrow(
        /limitStrategy" must be "fixed-window" with this store .*; got "sliding-window-counter"/,
      )
      await expect(start({ limitStrategy: 'leaky-bucket' as never }, [])).rejects.toThrow(
        'tollgate: option "limitStrategy" must be one of "fixed-window", "moving-window", "sliding-window-counter"; got "leaky-bucket"',
      )
    })
  })
}
