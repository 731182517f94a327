import { createServer, type Server } from 'node:http'
import { constants, type PerformanceEntry, PerformanceObserver } from 'node:perf_hooks'
import { getHeapSpaceStatistics } from 'node:v8'
import { expressServer, OptionError, tollgate } from '@tollgate/express'
import express, { type Express } from 'express'
import { Pool } from 'undici'
import { afterEach, describe, expect, it } from 'vitest'
import { Cleanup, chat, closeServer, fake, listen, send } from '../../../test/helpers/http.js'

const cleanup = new Cleanup()
afterEach(() => cleanup.run())

async function serve(server: Server): Promise<number> {
  const port = await listen(server)
  cleanup.add(() => closeServer(server), null)
  return port
}

/** An origin that does as little as possible, so the bytes measured are the gateway's. */
async function origin(): Promise<string> {
  const answer = Buffer.from(JSON.stringify({ choices: [{ message: { content: 'ok' } }] }))
  const server = createServer((req, res) => {
    req.resume()
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': answer.length })
      res.end(answer)
    })
  })
  return `http://127.0.0.1:${await serve(server)}`
}

function oldSpaceUsed(): number {
  return getHeapSpaceStatistics().find((s) => s.space_name === 'old_space')?.space_used_size ?? 0
}

/**
 * Bytes moved to the old generation by young-generation collections while `run` runs: the
 * growth of the old space seen after each scavenge (a full collection only resets the baseline).
 */
async function promotedDuring(run: () => Promise<void>): Promise<number> {
  let promoted = 0
  let last = oldSpaceUsed()
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      const now = oldSpaceUsed()
      const kind = (entry as PerformanceEntry & { detail?: { kind?: number } }).detail?.kind
      if (kind === constants.NODE_PERFORMANCE_GC_MINOR && now > last) promoted += now - last
      last = now
    }
  })
  observer.observe({ entryTypes: ['gc'] })
  try {
    await run()
    // Entries are delivered after the collection; let the last ones arrive.
    await new Promise((resolve) => setTimeout(resolve, 50))
  } finally {
    observer.disconnect()
  }
  return promoted
}

async function sendSequentially(port: number, count: number): Promise<void> {
  const pool = new Pool(`http://127.0.0.1:${port}`, { connections: 1 })
  const body = JSON.stringify(chat())
  try {
    for (let i = 0; i < count; i++) {
      const res = await pool.request({
        path: '/v1/chat/completions',
        method: 'POST',
        body,
        headers: { 'content-type': 'application/json' },
      })
      await res.body.dump()
      if (res.statusCode !== 200) throw new Error(`answered ${res.statusCode}`)
    }
  } finally {
    await pool.close()
  }
}

function gatewayApp(backend: string): Express {
  const gate = tollgate({ backends: [{ url: backend }] })
  cleanup.add(() => gate.close(), null)
  const app = express()
  app.post('/v1/chat/completions', gate.limit('1000000 per minute'), gate.forward())
  return app
}

describe('expressServer', () => {
  it('serves the app as app.listen() would: limits, forwarding, Express request and response methods', async () => {
    const backend = await fake(cleanup, { name: 'a', answerTokens: 2 })
    const gate = tollgate({ backends: [{ url: backend.url, id: 'a' }] })
    cleanup.add(() => gate.close(), null)
    const app = express()
    app.set('trust proxy', 'loopback')
    app.post('/v1/chat/completions', gate.limit('2 per minute'), gate.forward())
    const admin = express()
    admin.get('/who', (req, res) => res.json({ ip: req.ip, path: req.path, base: req.baseUrl }))
    app.use('/admin', admin)
    const port = await serve(expressServer(app))

    const first = await send(port, { path: '/v1/chat/completions', body: chat() })
    expect(first.status).toBe(200)
    expect(first.headers['x-backend']).toBe('a')
    expect(first.headers['ratelimit-policy']).toMatch(/"2-per-minute"/)
    expect((await send(port, { path: '/v1/chat/completions', body: chat() })).status).toBe(200)
    expect((await send(port, { path: '/v1/chat/completions', body: chat() })).status).toBe(429)

    const who = await send(port, { path: '/admin/who', headers: { 'x-forwarded-for': '203.0.113.9' } })
    expect(who.json()).toEqual({ ip: '203.0.113.9', path: '/who', base: '/admin' })
    expect(who.headers['x-powered-by']).toBe('Express')
  })

  it('passes Node server options on', async () => {
    const server = expressServer(express(), { keepAliveTimeout: 12_345 })
    expect(server.keepAliveTimeout).toBe(12_345)
  })

  it('refuses what is not an Express app, naming the call', () => {
    expect(() => expressServer((() => {}) as never)).toThrow(OptionError)
    expect(() => expressServer((() => {}) as never)).toThrow(/expressServer\(app\)/)
  })

  // Express gives each request and response the app's prototypes with Object.setPrototypeOf; on
  // Node 20 such objects survive young-generation collections, so each request's objects went to
  // the old generation (13.6 kB a request here through gate.limit() and gate.forward() served by
  // http.createServer(app), under 0.5 kB through expressServer), and the collector's pauses became
  // the latency tail. Counted in bytes, not timed.
  it('leaves a forwarded request’s objects to the young generation', async () => {
    const port = await serve(expressServer(gatewayApp(await origin())))
    await sendSequentially(port, 500)
    const requests = 2000
    const promoted = await promotedDuring(() => sendSequentially(port, requests))
    expect(promoted / requests).toBeLessThan(2000)
  })
})
