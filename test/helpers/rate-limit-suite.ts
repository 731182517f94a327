import type { LimitDecision, RateLimitOptions, RouteLimitOptions } from '@tollgate/core'
import { afterEach, describe, expect, it } from 'vitest'
import type { Cleanup } from './cleanup.js'
import { type Answer, send } from './http.js'

// biome-ignore lint/suspicious/noExplicitAny: the suite runs on both frameworks' request types
type AnyRequest = any

/** One route of a test app: its path, its limit and what its handler answers. */
export interface LimitedRouteSpec {
  path: string
  /**
   * Left out: the default limits. A string or options: this route's own limits (Fastify
   * `config.rateLimit`, Express `gate.limit(spec)`). `false`: no limit at all (Fastify
   * `rateLimit: false`, Express: no middleware).
   */
  limit?: string | RouteLimitOptions<AnyRequest> | false
  /** `ok` answers `{ ok: true }`; `decision` answers `{ decision }` with the request's rate-limit decision or null. */
  answer?: 'ok' | 'decision'
}

export interface AppSetup {
  /** The framework's own trust-proxy setting. */
  trustProxy?: boolean | string
  /** Default `127.0.0.1`. */
  host?: string
}

/** A client of a started app. Errors from tollgate end as a JSON 500 whose body holds the message. */
export interface LimitedApp {
  get(path: string, headers?: Record<string, string>): Promise<Answer>
}

/**
 * Starts an app with tollgate under `options` and these routes, listening on `setup.host`,
 * closed by `cleanup`; resolves null when the host cannot be bound (no IPv6 loopback).
 */
export type StartLimited = (
  cleanup: Cleanup,
  options: RateLimitOptions<AnyRequest>,
  routes: LimitedRouteSpec[],
  setup?: AppSetup,
) => Promise<LimitedApp | null>

async function started(app: LimitedApp | null): Promise<LimitedApp> {
  if (app === null) throw new Error('the app did not start')
  return app
}

async function statuses(app: LimitedApp, path: string, n: number, headers?: Record<string, string>) {
  const out: number[] = []
  for (let i = 0; i < n; i++) out.push((await app.get(path, headers)).status)
  return out
}

/** The rate-limit behaviour both adapters must share, through real sockets. */
export function describeRateLimits(framework: string, cleanup: Cleanup, startApp: StartLimited): void {
  afterEach(() => cleanup.run())
  const start = async (
    options: RateLimitOptions<AnyRequest>,
    routes: LimitedRouteSpec[],
    setup?: AppSetup,
  ): Promise<LimitedApp> => started(await startApp(cleanup, options, routes, setup))
  const keyOf = async (app: LimitedApp, path: string, headers?: Record<string, string>) =>
    (await app.get(path, headers)).json().decision?.key

  describe(`${framework}: rate limits`, () => {
    describe('multiple windows', () => {
      it('rejects on the first full window and charges no window for the rejected request', async () => {
        const app = await start({}, [
          { path: '/chat', limit: '3 per minute, 2 per second', answer: 'decision' },
        ])
        expect(await statuses(app, '/chat', 2)).toEqual([200, 200])
        const rejected = await app.get('/chat')
        expect(rejected.status).toBe(429)
        expect(rejected.json().error.limit).toBe('2 per second')

        // Rejected requests while the second window is full must leave the minute's count at 2.
        let res = await app.get('/chat')
        for (let tries = 0; res.status === 429 && tries < 50; tries++) {
          expect(res.json().error.limit).toBe('2 per second')
          await new Promise((resolve) => setTimeout(resolve, 100))
          res = await app.get('/chat')
        }
        expect(res.status).toBe(200)
        expect(
          res.json().decision.windows.map((w: { policy: string; used: number }) => [w.policy, w.used]),
        ).toEqual([
          ['3-per-minute', 3],
          ['2-per-second', 1],
        ])
        expect(res.headers.ratelimit).toMatch(/^"3-per-minute";r=0;t=\d+$/)
        const exhausted = await app.get('/chat')
        expect(exhausted.status).toBe(429)
        expect(exhausted.json().error.limit).toBe('3 per minute')
        expect(Number(exhausted.headers['retry-after'])).toBeGreaterThan(1)
      })

      it('lists every window in RateLimit-Policy', async () => {
        const app = await start({ defaultLimits: '200 per day, 50 per hour' }, [{ path: '/a' }])
        const res = await app.get('/a')
        expect(res.headers['ratelimit-policy']).toBe('"200-per-day";q=200;w=86400, "50-per-hour";q=50;w=3600')
        expect(res.headers.ratelimit).toMatch(/^"50-per-hour";r=49;t=(3600|3599)$/)
      })
    })

    describe('route limits', () => {
      it('gives each route its own counters under the default limits', async () => {
        const app = await start({ defaultLimits: '2 per minute' }, [{ path: '/a' }, { path: '/b' }])
        expect(await statuses(app, '/a', 3)).toEqual([200, 200, 429])
        expect(await statuses(app, '/b', 3)).toEqual([200, 200, 429])
      })

      it('lets a route limit, as a string or as options, replace the defaults', async () => {
        const app = await start({ defaultLimits: '1 per minute' }, [
          { path: '/b', limit: '3 per minute' },
          { path: '/d', limit: { limits: '2/minute' } },
        ])
        expect((await app.get('/b')).headers['ratelimit-policy']).toBe('"3-per-minute";q=3;w=60')
        expect(await statuses(app, '/b', 3)).toEqual([200, 200, 429])
        expect(await statuses(app, '/d', 3)).toEqual([200, 200, 429])
      })

      it('takes no limit as no limit: no counting, no headers, no decision', async () => {
        const app = await start({ defaultLimits: '1 per minute', applicationLimits: '1 per minute' }, [
          { path: '/c', limit: false, answer: 'decision' },
        ])
        for (let i = 0; i < 3; i++) {
          const res = await app.get('/c')
          expect(res.status).toBe(200)
          expect(res.json()).toEqual({ decision: null })
          expect(Object.keys(res.headers).filter((name) => name.includes('ratelimit'))).toEqual([])
        }
      })

      it('shares counters between routes given the same scope', async () => {
        const app = await start({}, [
          { path: '/x', limit: { limits: '2 per minute', scope: 'models' } },
          { path: '/y', limit: { limits: '2 per minute', scope: 'models' } },
        ])
        expect(await statuses(app, '/x', 1)).toEqual([200])
        expect(await statuses(app, '/y', 2)).toEqual([200, 429])
      })
    })

    describe('keys', () => {
      it('uses a global keyGenerator, and a route keyGenerator over it', async () => {
        const app = await start(
          {
            defaultLimits: '2 per minute',
            keyGenerator: (req) => String(req.headers['x-api-key'] ?? 'anonymous'),
          },
          [
            { path: '/global', answer: 'decision' },
            {
              path: '/tenant',
              limit: { limits: '2 per minute', keyGenerator: (req) => `tenant:${req.headers['x-tenant']}` },
              answer: 'decision',
            },
          ],
        )
        const alice = { 'x-api-key': 'alice' }
        const bob = { 'x-api-key': 'bob' }
        expect(await keyOf(app, '/global', alice)).toBe('alice')
        expect(await statuses(app, '/global', 2, alice)).toEqual([200, 429])
        expect(await statuses(app, '/global', 2, bob)).toEqual([200, 200])
        // The route's generator ignores the API key: alice and bob share tenant t1.
        expect(await keyOf(app, '/tenant', { ...alice, 'x-tenant': 't1' })).toBe('tenant:t1')
        expect(await statuses(app, '/tenant', 2, { ...bob, 'x-tenant': 't1' })).toEqual([200, 429])
        expect(await statuses(app, '/tenant', 1, { ...bob, 'x-tenant': 't2' })).toEqual([200])
      })

      it('accepts an async keyGenerator', async () => {
        const app = await start(
          { defaultLimits: '1 per minute', keyGenerator: async (req) => String(req.headers['x-user']) },
          [{ path: '/a' }],
        )
        expect(await statuses(app, '/a', 2, { 'x-user': 'u1' })).toEqual([200, 429])
        expect(await statuses(app, '/a', 1, { 'x-user': 'u2' })).toEqual([200])
      })

      it.each([
        ['returns no key', () => ''],
        [
          'rejects',
          async () => {
            throw new Error('key lookup failed')
          },
        ],
      ])('answers 500, not a hang, when keyGenerator %s', async (_how, keyGenerator) => {
        const app = await start({ defaultLimits: '1 per minute', keyGenerator }, [{ path: '/a' }])
        expect((await app.get('/a')).status).toBe(500)
      })

      it('ignores X-Forwarded-For unless the app trusts the proxy', async () => {
        const app = await start({ defaultLimits: '1 per minute' }, [{ path: '/a', answer: 'decision' }])
        expect(await keyOf(app, '/a', { 'x-forwarded-for': '203.0.113.7' })).toBe('127.0.0.1')
        expect((await app.get('/a', { 'x-forwarded-for': '198.51.100.1' })).status).toBe(429)
      })

      it('keys on the forwarded client IP when the app trusts the proxy', async () => {
        const app = await start({ defaultLimits: '1 per minute' }, [{ path: '/a', answer: 'decision' }], {
          trustProxy: true,
        })
        expect(await keyOf(app, '/a', { 'x-forwarded-for': '203.0.113.7' })).toBe('203.0.113.7')
        expect((await app.get('/a', { 'x-forwarded-for': '203.0.113.7' })).status).toBe(429)
        expect((await app.get('/a', { 'x-forwarded-for': '198.51.100.1' })).status).toBe(200)
      })

      it('groups IPv6 clients by /64 and reads IPv4-mapped addresses as IPv4', async () => {
        const app = await start({ defaultLimits: '2 per minute' }, [{ path: '/a', answer: 'decision' }], {
          trustProxy: true,
        })
        const from = (ip: string) => app.get('/a', { 'x-forwarded-for': ip })
        expect((await from('2001:db8:1:2::1')).json().decision.key).toBe('2001:db8:1:2::/64')
        expect((await from('2001:db8:1:2:ffff:eeee:dddd:9')).status).toBe(200)
        expect((await from('2001:DB8:1:2::abcd')).status).toBe(429)
        expect((await from('2001:db8:1:3::1')).status).toBe(200)
        expect((await from('::ffff:192.0.2.5')).json().decision.key).toBe('192.0.2.5')
        expect((await from('192.0.2.5')).status).toBe(200)
        expect((await from('::ffff:192.0.2.5')).status).toBe(429)
      })

      it('groups a real IPv6 loopback client by /64', async () => {
        const app = await startApp(
          cleanup,
          { defaultLimits: '1 per minute' },
          [{ path: '/a', answer: 'decision' }],
          {
            host: '::1',
          },
        )
        if (app === null) {
          console.warn('IPv6 loopback unavailable; skipping the socket variant of the /64 test')
          return
        }
        expect(await keyOf(app, '/a')).toBe('0:0:0:0::/64')
      })
    })

    describe('cost', () => {
      it('charges a fixed cost per request', async () => {
        const app = await start({ defaultLimits: '5 per minute', cost: 2 }, [{ path: '/a' }])
        expect((await app.get('/a')).headers.ratelimit).toMatch(/^"5-per-minute";r=3;/)
        expect(await statuses(app, '/a', 2)).toEqual([200, 429])
      })

      it('charges what a route cost function returns', async () => {
        const app = await start({ defaultLimits: '5 per minute' }, [
          { path: '/a', limit: { cost: (req) => Number(req.headers['x-cost'] ?? 1) } },
        ])
        expect((await app.get('/a', { 'x-cost': '4' })).headers.ratelimit).toMatch(/;r=1;/)
        const rejected = await app.get('/a', { 'x-cost': '2' })
        expect(rejected.status).toBe(429)
        expect(rejected.headers.ratelimit).toMatch(/;r=1;/)
        expect((await app.get('/a', { 'x-cost': '1' })).status).toBe(200)
      })

      it('answers 500 when a cost function returns a bad cost', async () => {
        const app = await start({ defaultLimits: '5 per minute', cost: () => Number.NaN }, [{ path: '/a' }])
        const res = await app.get('/a')
        expect(res.status).toBe(500)
        expect(res.json().error.code).toBe('rate_limit_check_failed')
      })
    })

    describe('application limits', () => {
      it('counts once across every limited route, on top of the route limits', async () => {
        const app = await start({ defaultLimits: '10 per minute', applicationLimits: '3 per minute' }, [
          { path: '/a' },
          { path: '/b' },
          { path: '/c', limit: '1 per minute' },
        ])
        expect((await app.get('/a')).headers['ratelimit-policy']).toBe(
          '"10-per-minute";q=10;w=60, "3-per-minute";q=3;w=60',
        )
        expect(await statuses(app, '/b', 1)).toEqual([200])
        expect(await statuses(app, '/c', 2)).toEqual([200, 429])
        const rejected = await app.get('/b')
        expect(rejected.status).toBe(429)
        expect(rejected.json().error.limit).toBe('3 per minute')
      })

      it('apply on their own when there are no default limits', async () => {
        const app = await start({ applicationLimits: '2 per minute' }, [{ path: '/a' }, { path: '/b' }])
        expect(await statuses(app, '/a', 1)).toEqual([200])
        expect(await statuses(app, '/b', 2)).toEqual([200, 429])
      })
    })

    describe('skip and allowList', () => {
      it('does not count or annotate skipped requests', async () => {
        const app = await start(
          { defaultLimits: '1 per minute', skip: (req) => req.headers['x-internal'] === 'yes' },
          [{ path: '/a', answer: 'decision' }],
        )
        for (let i = 0; i < 3; i++) {
          const res = await app.get('/a', { 'x-internal': 'yes' })
          expect(res.status).toBe(200)
          expect(res.headers.ratelimit).toBeUndefined()
          expect(res.json()).toEqual({ decision: null })
        }
        expect(await statuses(app, '/a', 2)).toEqual([200, 429])
      })

      it('accepts an async skip per route', async () => {
        const app = await start({ defaultLimits: '1 per minute' }, [
          { path: '/a', limit: { skip: async () => true } },
        ])
        expect(await statuses(app, '/a', 3)).toEqual([200, 200, 200])
      })

      it('never limits allow-listed clients, by IP or by predicate', async () => {
        const byIp = await start({ defaultLimits: '1 per minute', allowList: ['127.0.0.1'] }, [
          { path: '/ip' },
        ])
        expect(await statuses(byIp, '/ip', 3)).toEqual([200, 200, 200])
        expect((await byIp.get('/ip')).headers.ratelimit).toBeUndefined()
        const byKey = await start(
          {
            defaultLimits: '1 per minute',
            keyGenerator: (req) => String(req.headers['x-api-key'] ?? 'anonymous'),
            allowList: (_req, key) => key.startsWith('admin-'),
          },
          [{ path: '/key' }],
        )
        expect(await statuses(byKey, '/key', 3, { 'x-api-key': 'admin-1' })).toEqual([200, 200, 200])
        expect(await statuses(byKey, '/key', 2, { 'x-api-key': 'user-1' })).toEqual([200, 429])
      })
    })

    describe('responses', () => {
      it('sends the IETF headers on allowed and rejected responses, and a JSON 429', async () => {
        const app = await start({ defaultLimits: '2 per minute' }, [{ path: '/a' }])
        const allowed = await app.get('/a')
        expect(allowed.status).toBe(200)
        expect(allowed.headers['ratelimit-policy']).toBe('"2-per-minute";q=2;w=60')
        expect(allowed.headers.ratelimit).toMatch(/^"2-per-minute";r=1;t=(60|59)$/)
        expect(allowed.headers['retry-after']).toBeUndefined()
        expect(allowed.headers['x-ratelimit-limit']).toBeUndefined()
        await app.get('/a')

        const rejected = await app.get('/a')
        expect(rejected.status).toBe(429)
        expect(rejected.headers['content-type']).toMatch(/^application\/json/)
        expect(rejected.headers['ratelimit-policy']).toBe('"2-per-minute";q=2;w=60')
        expect(rejected.headers.ratelimit).toMatch(/^"2-per-minute";r=0;t=\d+$/)
        const retryAfter = String(rejected.headers['retry-after'])
        expect(retryAfter).toMatch(/^\d+$/)
        expect(Number(retryAfter)).toBeGreaterThanOrEqual(1)
        expect(Number(retryAfter)).toBeLessThanOrEqual(60)
        expect(rejected.json().error).toMatchObject({
          type: 'rate_limit_exceeded',
          code: 'rate_limit_exceeded',
          limit: '2 per minute',
          retry_after: Number(retryAfter),
        })
        expect(rejected.json().error.message).toContain('2 per minute')
      })

      it('sends Retry-After of at least 1 second when the window is about to reset', async () => {
        const app = await start({ defaultLimits: '1 per second' }, [{ path: '/a' }])
        await app.get('/a')
        const rejected = await app.get('/a')
        expect(rejected.status).toBe(429)
        expect(rejected.headers['retry-after']).toBe('1')
        expect(rejected.json().error.limit).toBe('1 per second')
      })

      it.each([
        ['legacy', false],
        ['both', true],
      ] as const)('sends the %s headers', async (mode, ietf) => {
        const app = await start({ defaultLimits: '3 per minute', headers: mode }, [{ path: '/a' }])
        const res = await app.get('/a')
        expect(res.headers.ratelimit !== undefined).toBe(ietf)
        expect(res.headers['ratelimit-policy'] !== undefined).toBe(ietf)
        expect(res.headers['x-ratelimit-limit']).toBe('3')
        expect(res.headers['x-ratelimit-remaining']).toBe('2')
        expect(res.headers['x-ratelimit-reset']).toMatch(/^(60|59)$/)
        await statuses(app, '/a', 2)
        const rejected = await app.get('/a')
        expect(rejected.status).toBe(429)
        expect(rejected.headers['x-ratelimit-remaining']).toBe('0')
        expect(rejected.headers['retry-after']).toMatch(/^\d+$/)
      })

      it('sends no rate-limit headers with headers: false, but still Retry-After on a 429', async () => {
        const app = await start({ defaultLimits: '1 per minute', headers: false }, [{ path: '/a' }])
        const allowed = await app.get('/a')
        expect(Object.keys(allowed.headers).filter((n) => n.includes('ratelimit'))).toEqual([])
        const rejected = await app.get('/a')
        expect(rejected.status).toBe(429)
        expect(Object.keys(rejected.headers).filter((n) => n.includes('ratelimit'))).toEqual([])
        expect(Number(rejected.headers['retry-after'])).toBeGreaterThanOrEqual(1)
      })

      it('builds the 429 body with rejectionBody and calls onExceeded first', async () => {
        const exceeded: LimitDecision[] = []
        const app = await start(
          {
            defaultLimits: '1 per minute',
            onExceeded: (req, decision) => {
              expect(req.url).toBe('/a')
              exceeded.push(decision)
            },
            rejectionBody: (req, decision) => ({
              message: `slow down on ${req.url}`,
              limit: decision.limit,
              seen: exceeded.length,
            }),
          },
          [{ path: '/a' }],
        )
        await app.get('/a')
        const rejected = await app.get('/a')
        expect(rejected.status).toBe(429)
        expect(rejected.json()).toEqual({ message: 'slow down on /a', limit: '1 per minute', seen: 1 })
        expect(exceeded).toHaveLength(1)
        expect(exceeded[0]).toMatchObject({ allowed: false, key: '127.0.0.1', limit: '1 per minute' })
      })

      it('answers the default 429, not a hang, when rejectionBody throws', async () => {
        const app = await start(
          {
            defaultLimits: '1 per minute',
            rejectionBody: () => {
              throw new Error('broken body builder')
            },
          },
          [{ path: '/a' }],
        )
        await app.get('/a')
        const res = await app.get('/a')
        expect(res.status).toBe(429)
        expect(res.text()).not.toContain('broken body builder')
      })

      it('shows the decision to the handler', async () => {
        const app = await start({ defaultLimits: '5 per minute' }, [{ path: '/a', answer: 'decision' }])
        const { decision } = (await app.get('/a')).json()
        expect(decision).toMatchObject({
          allowed: true,
          key: '127.0.0.1',
          retryAfter: 0,
          limit: '5 per minute',
          binding: { policy: '5-per-minute', used: 1, remaining: 4 },
        })
        expect(decision.windows).toHaveLength(1)
      })
    })
  })
}

/** The client of an app listening on `host`:`port`. */
export function clientOf(host: string, port: number): LimitedApp {
  return { get: (path, headers) => send(port, { host, path, headers }) }
}
