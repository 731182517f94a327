import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ActiveHealthCheck } from '../../src/balance/active-health-check.js'
import { createBalancer } from '../../src/balance/balancer.js'
import { BackendRegistry } from '../../src/balance/registry.js'

let server: Server
let healthy = true
let probes: string[] = []
let url: string

beforeAll(async () => {
  server = createServer((req, res) => {
    probes.push(req.url ?? '')
    res.statusCode = healthy ? 200 : 500
    res.end(healthy ? 'ok' : 'broken')
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
})

afterAll(async () => {
  server.closeAllConnections()
  await new Promise<void>((resolve) => server.close(() => resolve()))
})

describe('active health check', () => {
  it('marks a backend unhealthy and healthy again after the thresholds', async () => {
    const registry = new BackendRegistry([{ id: 'live', url: `${url}/v1` }])
    const changes: boolean[] = []
    const check = new ActiveHealthCheck(
      registry,
      { path: '/healthz', healthyThreshold: 2, unhealthyThreshold: 2, intervalMs: 60_000 },
      (b) => changes.push(b.activeHealthy),
    )
    const state = registry.get('live')!
    try {
      probes = []
      healthy = false
      await check.checkNow()
      expect(state.activeHealthy).toBe(true)
      await check.checkNow()
      expect(state.activeHealthy).toBe(false)
      expect(state.status()).toBe('unhealthy')
      healthy = true
      await check.checkNow()
      expect(state.activeHealthy).toBe(false)
      await check.checkNow()
      expect(state.activeHealthy).toBe(true)
      expect(changes).toEqual([false, true])
      // Probed on the origin, not under the base path.
      expect(probes).toEqual(['/healthz', '/healthz', '/healthz', '/healthz'])
    } finally {
      await check.close()
    }
  })

  it('fails a probe to a closed port or one that times out', async () => {
    const closed = createServer()
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve))
    const closedPort = (closed.address() as AddressInfo).port
    await new Promise<void>((resolve) => closed.close(() => resolve()))
    const slow = createServer(() => {})
    await new Promise<void>((resolve) => slow.listen(0, '127.0.0.1', resolve))
    const registry = new BackendRegistry([
      { id: 'closed', url: `http://127.0.0.1:${closedPort}` },
      { id: 'slow', url: `http://127.0.0.1:${(slow.address() as AddressInfo).port}` },
    ])
    const check = new ActiveHealthCheck(registry, { unhealthyThreshold: 1, timeoutMs: 100 })
    try {
      await check.checkNow()
      expect(registry.list().map((b) => b.activeHealthy)).toEqual([false, false])
    } finally {
      await check.close()
      slow.closeAllConnections()
      await new Promise<void>((resolve) => slow.close(() => resolve()))
    }
  })

  it('runs on its own timer inside the balancer and stops on close', async () => {
    healthy = false
    probes = []
    const balancer = createBalancer({
      backends: [
        { id: 'live', url },
        { id: 'other', url: `${url}/b` },
      ],
      health: { activeCheck: { intervalMs: 20, unhealthyThreshold: 1, healthyThreshold: 1 } },
    })
    try {
      await expect.poll(() => balancer.snapshot()[0]?.status, { timeout: 5_000 }).toBe('unhealthy')
      healthy = true
      await expect.poll(() => balancer.snapshot()[0]?.status, { timeout: 5_000 }).toBe('healthy')
    } finally {
      await balancer.close()
    }
    const count = probes.length
    await new Promise((resolve) => setTimeout(resolve, 80))
    expect(probes.length).toBe(count)
  })

  it('rejects bad options with the value quoted', () => {
    const registry = new BackendRegistry([])
    expect(() => new ActiveHealthCheck(registry, { path: 'health' })).toThrow(
      `tollgate: option "health.activeCheck.path" must be an absolute path like '/health'; got "health"`,
    )
    expect(() => new ActiveHealthCheck(registry, { intervalMs: 0 })).toThrow(
      'tollgate: option "health.activeCheck.intervalMs" must be a number greater than 0 (default 10000); got 0',
    )
  })
})
