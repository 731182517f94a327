import type { Server } from 'node:http'
import { flexibleStore as expressFlexibleStore, tollgate as expressTollgate } from '@tollgate/express'
import fastifyTollgate, { flexibleStore } from '@tollgate/fastify'
import express from 'express'
import Fastify, { type FastifyInstance } from 'fastify'
import { afterEach, describe, expect, it } from 'vitest'
import { Cleanup, closeServer } from '../helpers/cleanup.js'
import { TcpProxy } from '../helpers/tcp-proxy.js'
import { waitFor } from '../helpers/wait.js'
import { type Connection, type Database, mariadb, postgres, uniqueTable } from './databases.js'

const cleanup = new Cleanup()
afterEach(() => cleanup.run())

const quiet = { warn: () => {}, info: () => {} }

async function fastifyApp(store: ReturnType<typeof flexibleStore>, limits: string): Promise<string> {
  const app: FastifyInstance = Fastify()
  await app.register(fastifyTollgate, { store, logger: quiet })
  app.get('/login', { config: { rateLimit: { limits, scope: 'login' } } }, async () => ({ ok: true }))
  await app.listen({ port: 0, host: '127.0.0.1' })
  cleanup.add(() => app.close(), app)
  const address = app.server.address() as { port: number }
  return `http://127.0.0.1:${address.port}`
}

async function expressApp(store: ReturnType<typeof flexibleStore>, limits: string): Promise<string> {
  const gate = expressTollgate({ store, logger: quiet })
  const app = express()
  app.get('/login', gate.limit({ limits, scope: 'login' }), (_req, res) => {
    res.json({ ok: true })
  })
  const server: Server = app.listen(0)
  await new Promise<void>((resolve) => server.once('listening', () => resolve()))
  cleanup.add(() => gate.close(), gate)
  cleanup.add(() => closeServer(server), server)
  return `http://127.0.0.1:${(server.address() as { port: number }).port}`
}

async function status(base: string): Promise<number> {
  const response = await fetch(`${base}/login`)
  await response.arrayBuffer()
  return response.status
}

function connect(db: Database, port?: number): Connection {
  const connection = db.connect(port)
  cleanup.add(() => connection.end(), connection)
  return connection
}

describe.each([postgres, mariadb])('flexibleStore on $name', (db) => {
  it('two app instances (Fastify and Express) share one limit, and a rejection charges no window', async () => {
    const table = uniqueTable()
    const admin = connect(db)
    cleanup.add(() => admin.drop(table), null)
    const a = connect(db)
    const b = connect(db)
    const limits = '3 per minute, 10 per hour'
    const first = await fastifyApp(flexibleStore(a.factory, { tableName: table }), limits)
    const second = await expressApp(expressFlexibleStore(b.factory, { tableName: table }), limits)

    const answers: number[] = []
    for (const base of [first, second, first, second, first, second]) answers.push(await status(base))
    expect(answers).toEqual([200, 200, 200, 429, 429, 429])
    // Three allowed requests in the hour window; the three rejected by the minute are given back.
    expect(await admin.points(table, '10-per-hour')).toEqual([3])
    expect(await admin.points(table, '3-per-minute')).toEqual([3])
  })

  it('deductWhen refunds through the database', async () => {
    const table = uniqueTable()
    const admin = connect(db)
    cleanup.add(() => admin.drop(table), null)
    const app = Fastify()
    await app.register(fastifyTollgate, {
      store: flexibleStore(connect(db).factory, { tableName: table }),
      logger: quiet,
      deductWhen: (_request, statusCode) => statusCode < 500,
    })
    app.get('/fail', { config: { rateLimit: '2 per minute' } }, async (_request, reply) =>
      reply.code(503).send({}),
    )
    await app.listen({ port: 0, host: '127.0.0.1' })
    cleanup.add(() => app.close(), app)
    const base = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`
    const answers: number[] = []
    for (let i = 0; i < 4; i++) {
      const response = await fetch(`${base}/fail`)
      await response.arrayBuffer()
      answers.push(response.status)
    }
    expect(answers).toEqual([503, 503, 503, 503])
    await waitFor(async () => (await admin.points(table, '2-per-minute'))[0] === 0, 'the last refund')
  })

  it('keeps answering from the insurance limiter while the database is cut off, then shares again', async () => {
    const table = uniqueTable()
    const admin = connect(db)
    cleanup.add(() => admin.drop(table), null)
    const proxy = new TcpProxy({ host: db.url.hostname, port: Number(db.url.port) })
    const port = await proxy.start()
    cleanup.add(() => proxy.cut(), proxy)
    const through = connect(db, port)
    const warnings: string[] = []
    const store = flexibleStore(through.factory, { tableName: table, timeoutMs: 1000 })
    const app = Fastify()
    await app.register(fastifyTollgate, { store, logger: { warn: (m) => warnings.push(m), info: () => {} } })
    app.get('/login', { config: { rateLimit: '4 per minute' } }, async () => ({ ok: true }))
    await app.listen({ port: 0, host: '127.0.0.1' })
    cleanup.add(() => app.close(), app)
    const base = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`

    expect([await status(base), await status(base)]).toEqual([200, 200])
    expect(await admin.points(table, '4-per-minute')).toEqual([2])

    await proxy.cut()
    // Every request is answered; this process now counts on its own, from zero.
    const during: number[] = []
    for (let i = 0; i < 5; i++) during.push(await status(base))
    expect(during).toEqual([200, 200, 200, 200, 429])
    expect(warnings.some((w) => w.includes('unavailable'))).toBe(true)

    await proxy.start()
    // The probe finds the database back (first retry 0.5 s after the outage began).
    await waitFor(
      async () => (await status(base)) === 200 && (await admin.points(table, '4-per-minute'))[0] === 3,
      'shared counting to resume',
      10_000,
    )
    expect([await status(base), await status(base)]).toEqual([200, 429])
    expect(await admin.points(table, '4-per-minute')).toEqual([4])
  })
})
