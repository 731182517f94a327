import http, { type Server } from 'node:http'
import type { Socket } from 'node:net'
import { type ExpressTollgate, tollgate as expressTollgate } from '@tollgate/express'
import fastifyTollgate from '@tollgate/fastify'
import express from 'express'
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import { afterAll, describe, expect, it } from 'vitest'
import { type FakeModelServer, startFakeModelServer } from '../../examples/fake-model-server.js'
import { send } from '../faults/support.js'
import { portOf } from '../helpers/ports.js'

// Who the client is decides whose budget a request spends. Requests come over real sockets from
// 127.0.0.1; the headers below are what an attacker writes to look like someone else.

const apps: FastifyInstance[] = []
const servers: Server[] = []
const gates: ExpressTollgate[] = []
let fake: FakeModelServer | undefined

afterAll(async () => {
  await Promise.all(apps.map((app) => app.close()))
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))))
  await Promise.all(gates.map((g) => g.close()))
  await fake?.close()
})

type TrustProxy = boolean | string | number

interface Target {
  port: number
}

async function fastifyApp(trustProxy: TrustProxy): Promise<Target> {
  const app = Fastify({ trustProxy } as FastifyServerOptions)
  apps.push(app)
  await app.register(fastifyTollgate, { defaultLimits: '3 per minute' })
  app.get('/whoami', async (request) => ({ key: request.rateLimit?.key, ip: request.ip }))
  await app.listen({ port: 0, host: '127.0.0.1' })
  return { port: portOf(app.server) }
}

async function expressApp(trustProxy: TrustProxy): Promise<Target> {
  const gate = expressTollgate({ defaultLimits: '3 per minute' })
  gates.push(gate)
  const app = express()
  app.set('trust proxy', trustProxy)
  app.get('/whoami', gate.limit(), (req, res) => {
    res.json({ key: req.rateLimit?.key, ip: req.ip })
  })
  const server = await new Promise<Server>((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s))
  })
  servers.push(server)
  return { port: portOf(server) }
}

async function whoami(target: Target, headers: Record<string, string>) {
  const answer = await send(target.port, { path: '/whoami', headers })
  const body = answer.status === 200 ? JSON.parse(answer.body) : {}
  return { status: answer.status, key: body.key as string | undefined, ip: body.ip as string | undefined }
}

/** `whoami` for each set of headers in turn over one kept-alive connection; fails if it was not one. */
async function whoamiOverOneConnection(target: Target, headerSets: Record<string, string>[]) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
  const sockets = new Set<Socket>()
  const results: { status: number; key: string | undefined }[] = []
  try {
    for (const headers of headerSets) {
      results.push(
        await new Promise((resolve, reject) => {
          const req = http.get(
            { host: '127.0.0.1', port: target.port, path: '/whoami', headers, agent },
            (res) => {
              sockets.add(res.socket)
              let text = ''
              res.setEncoding('utf8')
              res.on('data', (chunk: string) => {
                text += chunk
              })
              res.on('end', () =>
                resolve({
                  status: res.statusCode ?? 0,
                  key: res.statusCode === 200 ? JSON.parse(text).key : undefined,
                }),
              )
            },
          )
          req.on('error', reject)
        }),
      )
    }
  } finally {
    agent.destroy()
  }
  expect(sockets.size).toBe(1)
  return results
}

const spoofs: Record<string, string>[] = [
  { 'x-forwarded-for': '1.1.1.1' },
  { 'x-forwarded-for': '2.2.2.2, 3.3.3.3' },
  { forwarded: 'for=4.4.4.4' },
  { forwarded: 'for="[2001:db8::1]";proto=https', 'x-forwarded-for': '5.5.5.5' },
  { 'x-real-ip': '6.6.6.6', 'x-client-ip': '7.7.7.7', 'true-client-ip': '8.8.8.8' },
]

for (const [name, build] of [
  ['Fastify', fastifyApp],
  ['Express', expressApp],
] as const) {
  describe(`${name}: client identity`, () => {
    it('without trust proxy, forwarding headers never change the key', async () => {
      const target = await build(false)
      const results = []
      for (const headers of spoofs) results.push(await whoami(target, headers))
      // Five requests, each claiming to be someone else: one client, three allowed.
      expect(results.map((r) => r.status)).toEqual([200, 200, 200, 429, 429])
      expect(new Set(results.slice(0, 3).map((r) => r.key))).toEqual(new Set(['127.0.0.1']))
    })

    it('over one kept-alive connection, forwarding headers never change the key either', async () => {
      // The client address is read once per connection: later requests on it must not slip past.
      const results = await whoamiOverOneConnection(await build(false), [{}, ...spoofs])
      expect(results.map((r) => r.status)).toEqual([200, 200, 200, 429, 429, 429])
      expect(new Set(results.slice(0, 3).map((r) => r.key))).toEqual(new Set(['127.0.0.1']))
    })

    it('trusting the proxy, each request on one kept-alive connection is keyed by its own header', async () => {
      // A proxy sends many clients' requests over one connection to the gateway.
      const clients = ['203.0.113.1', '203.0.113.2', '203.0.113.3', '203.0.113.1']
      const results = await whoamiOverOneConnection(
        await build('127.0.0.1'),
        clients.map((client) => ({ 'x-forwarded-for': client })),
      )
      expect(results.map((r) => r.key)).toEqual(clients)
    })

    it('trusting the loopback proxy, only the hop it added counts', async () => {
      const target = await build('127.0.0.1')
      // The proxy at 127.0.0.1 appended the real client (203.0.113.7); what the client itself
      // wrote to the left of it is not trusted.
      const forged = ['10.0.0.1', '10.0.0.2, 10.0.0.3', 'unknown', '::1']
      const results = []
      for (const left of forged) {
        results.push(
          await whoami(target, { 'x-forwarded-for': `${left}, 203.0.113.7`, forwarded: 'for=9.9.9.9' }),
        )
      }
      expect(results.map((r) => r.status)).toEqual([200, 200, 200, 429])
      expect(new Set(results.slice(0, 3).map((r) => r.key))).toEqual(new Set(['203.0.113.7']))
    })

    it('trusting a hop count, the key is the address the framework settled on', async () => {
      // Fastify and Express count hops differently; tollgate follows whichever runs it.
      const target = await build(1)
      const a = await whoami(target, { 'x-forwarded-for': '198.51.100.1, 198.51.100.2' })
      const b = await whoami(target, { 'x-forwarded-for': '198.51.100.9, 198.51.100.2' })
      expect(a.key).toBe(a.ip)
      expect(b.key).toBe(a.key)
      expect(a.key).not.toBe('198.51.100.1')
    })

    it('rotating IPv6 addresses inside one /64 spends one budget', async () => {
      const target = await build('127.0.0.1')
      const results = []
      for (let i = 1; i <= 6; i++) {
        const address = `2001:db8:abcd:12:${i.toString(16)}:${(i * 7919).toString(16)}:0:${i}`
        results.push(await whoami(target, { 'x-forwarded-for': address }))
      }
      expect(results.map((r) => r.status)).toEqual([200, 200, 200, 429, 429, 429])
      expect(results[0]!.key).toBe('2001:db8:abcd:12::/64')
      // The neighbouring /64 is another subscriber, with a budget of its own.
      expect((await whoami(target, { 'x-forwarded-for': '2001:db8:abcd:13::1' })).status).toBe(200)
      // The same address written another way is the same client.
      const spelled = await whoami(target, { 'x-forwarded-for': '2001:0db8:ABCD:0012:0000:0000:0000:0001' })
      expect(spelled.status).toBe(429)
    })
  })
}

describe('what the backend is told about the client', () => {
  it('without trust proxy, X-Forwarded-For upstream is the socket peer, whatever the client wrote', async () => {
    fake = await startFakeModelServer({ name: 'ident' })
    const app = Fastify()
    apps.push(app)
    await app.register(fastifyTollgate, { backends: [{ url: fake.url }] })
    app.get('/v1/models', app.tollgate.forward())
    await app.listen({ port: 0, host: '127.0.0.1' })
    const port = portOf(app.server)
    const answer = await send(port, {
      path: '/v1/models',
      headers: { 'x-forwarded-for': '1.2.3.4', forwarded: 'for=1.2.3.4', 'x-forwarded-host': 'evil.example' },
    })
    expect(answer.status).toBe(200)
    const seen = fake.lastRequest!.headers
    expect(seen['x-forwarded-for']).toBe('127.0.0.1')
    expect(seen.forwarded).toBeUndefined()
    expect(seen['x-forwarded-host']).not.toBe('evil.example')
  })
})
