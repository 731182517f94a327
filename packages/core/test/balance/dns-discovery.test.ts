import { promises as dns } from 'node:dns'
import { DnsDiscovery } from '@tollgate/core'
import { ForwardingGateway, UserCallbacks } from '@tollgate/core/internal'
import dns2 from 'dns2'
import { afterEach, describe, expect, it } from 'vitest'

const { Packet } = dns2

/** A DNS server on 127.0.0.1 answering A queries from a table the test changes. */
async function startDnsServer() {
  const records = new Map<string, string[]>()
  const server = dns2.createServer({
    udp: true,
    handle: (request, send) => {
      const response = Packet.createResponseFromRequest(request)
      const question = request.questions[0]
      const addresses = question ? records.get(question.name) : undefined
      if (addresses === undefined)
        response.header.rcode = 3 // NXDOMAIN
      else if (question?.type === Packet.TYPE.A) {
        for (const address of addresses) {
          response.answers.push({
            name: question.name,
            type: Packet.TYPE.A,
            class: Packet.CLASS.IN,
            ttl: 1,
            address,
            // dns2's type asks for the encoder its own records carry; the packet writer does not.
          } as never)
        }
      }
      send(response)
    },
  })
  await server.listen({ udp: { port: 0, address: '127.0.0.1' } })
  const port = (server.addresses().udp as { port: number }).port
  const resolver = new dns.Resolver({ timeout: 300, tries: 1 })
  resolver.setServers([`127.0.0.1:${port}`])
  let closed = false
  const close = async () => {
    if (!closed) await server.close()
    closed = true
  }
  return { records, resolver, close }
}

const open: (() => unknown)[] = []
afterEach(async () => {
  for (const close of open.splice(0).reverse()) await close()
})

async function setup(addresses: string[] | undefined) {
  const server = await startDnsServer()
  open.push(server.close)
  if (addresses) server.records.set('model.test', addresses)
  const gateway = new ForwardingGateway({ backends: [] }, new UserCallbacks(console))
  open.push(() => gateway.close())
  const warnings: string[] = []
  const discovery = new DnsDiscovery(gateway.backends, {
    name: 'model.test',
    port: 8000,
    family: 4,
    refreshMs: 60_000,
    backend: { models: ['llama'], zone: 'a' },
    resolver: server.resolver,
    logger: { warn: (message) => warnings.push(message) },
  })
  open.push(() => discovery.close())
  return { server, gateway, discovery, warnings }
}

const ids = (gateway: ForwardingGateway<unknown>) =>
  gateway.backends.snapshot().map((b) => `${b.id} ${b.status}`)

describe('DNS discovery', () => {
  it('registers one backend per address with the entry settings', async () => {
    const { gateway, discovery } = await setup(['10.0.0.1', '10.0.0.2'])
    await discovery.start()
    const snapshot = gateway.backends.snapshot()
    expect(snapshot.map((b) => b.url).sort()).toEqual(['http://10.0.0.1:8000', 'http://10.0.0.2:8000'])
    expect(snapshot.every((b) => b.zone === 'a' && b.models?.[0] === 'llama')).toBe(true)
  })

  it('adds addresses that appear and drains, then removes, those that vanish', async () => {
    const { server, gateway, discovery } = await setup(['10.0.0.1', '10.0.0.2'])
    await discovery.start()
    // A request in flight on 10.0.0.2 must finish before that backend goes away.
    const lease = await gateway.balancer.acquire({}, new Set(['model.test:8000/10.0.0.1']))
    expect(lease.backend.id).toBe('model.test:8000/10.0.0.2')

    server.records.set('model.test', ['10.0.0.1', '10.0.0.3'])
    await discovery.refresh()
    expect(ids(gateway).sort()).toEqual([
      'model.test:8000/10.0.0.1 healthy',
      'model.test:8000/10.0.0.2 draining',
      'model.test:8000/10.0.0.3 healthy',
    ])
    lease.finish({ ok: true, latencyMs: 1 })
    await new Promise((resolve) => setImmediate(resolve))
    expect(ids(gateway).sort()).toEqual([
      'model.test:8000/10.0.0.1 healthy',
      'model.test:8000/10.0.0.3 healthy',
    ])
    expect(discovery.addresses).toEqual(['10.0.0.1', '10.0.0.3'])
  })

  it('takes a draining address back when it reappears', async () => {
    const { server, gateway, discovery } = await setup(['10.0.0.1', '10.0.0.2'])
    await discovery.start()
    const lease = await gateway.balancer.acquire({}, new Set(['model.test:8000/10.0.0.1']))
    server.records.set('model.test', ['10.0.0.1'])
    await discovery.refresh()
    server.records.set('model.test', ['10.0.0.1', '10.0.0.2'])
    await discovery.refresh()
    lease.finish({ ok: true, latencyMs: 1 })
    await new Promise((resolve) => setImmediate(resolve))
    expect(ids(gateway).sort()).toEqual([
      'model.test:8000/10.0.0.1 healthy',
      'model.test:8000/10.0.0.2 healthy',
    ])
  })

  it('drains everything when the name stops existing (scaled to zero)', async () => {
    const { server, gateway, discovery } = await setup(['10.0.0.1'])
    await discovery.start()
    server.records.delete('model.test')
    await discovery.refresh()
    await new Promise((resolve) => setImmediate(resolve))
    expect(ids(gateway)).toEqual([])
  })

  it('keeps the known backends while the DNS server does not answer', async () => {
    const { server, gateway, discovery, warnings } = await setup(['10.0.0.1'])
    await discovery.start()
    await server.close()
    await discovery.refresh()
    await discovery.refresh()
    expect(ids(gateway)).toEqual(['model.test:8000/10.0.0.1 healthy'])
    expect(warnings).toHaveLength(1)
    expect(warnings[0]).toMatch(/DNS discovery of model.test failed/)
  })

  it('rejects a bad port with an option error', () => {
    const gateway = new ForwardingGateway({ backends: [] }, new UserCallbacks(console))
    open.push(() => gateway.close())
    expect(() => new DnsDiscovery(gateway.backends, { name: 'x', port: 70_000 })).toThrow(
      /option "dns.port" must be a port from 1 to 65535; got 70000/,
    )
  })
})
