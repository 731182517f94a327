import { afterEach, describe, expect, it } from 'vitest'
import { createBalancer } from '../../src/balance/balancer.js'
import type { BalancerError } from '../../src/balance/errors.js'
import { apiKeyKey } from '../../src/limits/api-key.js'
import { closeHarnesses, count, harness } from './harness.js'

afterEach(() => closeHarnesses())

const fresh = (i: number) => ({ headers: { 'x-tenant-id': `mint-${i}` } })

describe('who a tenant is', () => {
  it('is the client address by default, whatever tenant header the client sends', async () => {
    const h = harness({ tenant: undefined })
    void h.askAs('a1', { headers: { 'x-tenant-id': 'gold' }, clientIp: '10.0.0.1' })
    void h.askAs('a2', { headers: { 'x-tenant-id': 'silver' }, clientIp: '10.0.0.1' })
    void h.askAs('b', { headers: { 'x-tenant-id': 'gold' }, clientIp: '2001:db8:1:2::7' })
    await h.serve(3)
    void h.askAs('a3', { headers: { 'x-tenant-id': 'bronze' }, clientIp: '10.0.0.1' })
    void h.askAs('b2', { clientIp: '2001:db8:1:2::9' })
    const rows = h.b.queueSnapshot().tenants.map((t) => [t.tenant, t.waiting])
    expect(rows).toEqual([
      ['10.0.0.1', 1],
      ['2001:db8:1:2::/64', 1],
      ['(new)', 0],
    ])
  })

  it('is the rate-limit key when the app keys clients (the API key, hashed)', async () => {
    const h = harness({ tenant: undefined }, { clientKey: apiKeyKey })
    const asKey = (key: string) => ({ request: { headers: { authorization: `Bearer ${key}` } } })
    void h.askAs('one', asKey('sk-one'))
    await h.serve(1)
    void h.askAs('one', asKey('sk-one'))
    const [row] = h.b.queueSnapshot().tenants
    expect(row?.tenant).toMatch(/^key:[0-9a-f]{32}$/)
    expect(JSON.stringify(h.b.queueSnapshot())).not.toContain('sk-one')
  })

  it('falls back to the address when the keyGenerator answers with a promise, and says so once', async () => {
    const h = harness({ tenant: undefined }, { clientKey: async () => 'k' })
    void h.askAs('x', { clientIp: '10.0.0.9' })
    void h.askAs('x', { clientIp: '10.0.0.9' })
    await h.serve(1)
    expect(h.b.queueSnapshot().tenants[0]?.tenant).toBe('10.0.0.9')
    expect(h.warnings).toHaveLength(1)
    expect(h.warnings[0]).toMatch(/fairness tenant \(keyGenerator\).*promise/)
  })

  it('takes a tenant header only when the app says it trusts it', () => {
    expect(() => createBalancer({ fairness: { tenant: 'x-tenant-id' } })).toThrow(
      /option "fairness\.tenant" names a header .*trustTenantHeader: true/,
    )
    expect(() => createBalancer({ fairness: { trustTenantHeader: 'yes' as never } })).toThrow(
      /"fairness\.trustTenantHeader" must be true or false/,
    )
    expect(() =>
      createBalancer({ fairness: { tenant: (() => 't') as never, trustTenantHeader: true } }),
    ).toThrow(/"fairness\.trustTenantHeader" applies to a header name/)
  })
})

describe('tenant ids minted per request', () => {
  it('add up to one tenant: an established tenant keeps half the slots', async () => {
    const h = harness({})
    await h.establish('honest')
    for (let i = 0; i < 10; i++) void h.ask('honest')
    for (let i = 0; i < 40; i++) void h.askAs('attacker', fresh(i))
    expect(count(await h.serve(20))).toEqual({ honest: 10, attacker: 10 })
  })

  it('do not push an established tenant out of a full queue; fresh ids are turned away instead', async () => {
    const h = harness({}, { queue: { size: 8 } })
    await h.establish('honest')
    for (let i = 0; i < 3; i++) void h.ask('honest')
    const attackers = Array.from({ length: 5 }, (_, i) =>
      h.askAs('attacker', fresh(i)).catch((e: BalancerError) => e.code),
    )
    const turnedAway = h.askAs('attacker', fresh(99)).catch((e: BalancerError) => e.code)
    expect(await turnedAway).toBe('queue_full')
    // The established tenant, with fewer waiting than all fresh ids together, takes a place from them.
    void h.ask('honest')
    expect(await attackers[4]).toBe('queue_full')
    expect(count(await h.serve(8))).toEqual({ honest: 4, attacker: 4 })
  })

  it('take a place from an established tenant only when it holds three more than all of them', async () => {
    const h = harness({}, { queue: { size: 8 } })
    await h.establish('honest')
    for (let i = 0; i < 4; i++) void h.ask('honest')
    const attackers = Array.from({ length: 4 }, (_, i) =>
      h.askAs('attacker', fresh(i)).catch((e: BalancerError) => e.code),
    )
    // Four each: the established tenant takes the newest fresh id's place, ...
    void h.ask('honest')
    expect(await attackers[3]).toBe('queue_full')
    // ... and holding five against three keeps them.
    await expect(h.askAs('attacker', fresh(9))).rejects.toMatchObject({ code: 'queue_full' })
    expect(count(await h.serve(8))).toEqual({ honest: 5, attacker: 3 })
  })

  it('share the per-tenant cap as one tenant', async () => {
    const h = harness({ maxWaitingPerTenant: 3 }, { queue: { size: 20 } })
    for (let i = 0; i < 3; i++) void h.askAs('attacker', fresh(i))
    await expect(h.askAs('attacker', fresh(3))).rejects.toMatchObject({
      status: 503,
      code: 'tenant_queue_full',
      message: expect.stringMatching(/not served before share 3 places/),
    })
  })

  it('give no weight: only tenants the configuration names get theirs', async () => {
    const weights = (tenant: string) => (tenant.startsWith('gold') ? 3 : 1)
    const h = harness({ weights })
    await h.establish('free')
    for (let i = 0; i < 8; i++) void h.ask('free')
    for (let i = 0; i < 8; i++) void h.askAs('gold', { headers: { 'x-tenant-id': `gold-${i}` } })
    expect(count(await h.serve(8))).toEqual({ free: 4, gold: 4 })
  })
})

describe('a tenant not served before', () => {
  it('gets its own share once one request of it is served, for the requests it has waiting too', async () => {
    const h = harness({})
    for (let i = 0; i < 12; i++) void h.ask('heavy')
    for (let i = 0; i < 4; i++) void h.ask('light')
    // heavy's first request is served from the shared class; then heavy and the class alternate
    // until light's first is served, and from then on heavy and light do.
    expect(await h.serve(8)).toEqual(['heavy', 'heavy', 'heavy', 'light', 'light', 'heavy', 'light', 'heavy'])
  })

  it('is never new when the weights table names it', async () => {
    const h = harness({ weights: { gold: 3 } })
    await h.establish('free')
    for (let i = 0; i < 8; i++) void h.ask('free')
    for (let i = 0; i < 8; i++) void h.ask('gold')
    expect(count(await h.serve(8))).toEqual({ gold: 6, free: 2 })
    expect(h.b.queueSnapshot().tenants.find((t) => t.tenant === 'gold')?.served).toBe(6)
  })
})
