import { createServer, type IncomingHttpHeaders, type Server } from 'node:http'
import { type AddressInfo, Socket } from 'node:net'
import { tollgate as expressTollgate, type Gate } from '@tollgate/express'
import fastifyTollgate from '@tollgate/fastify'
import express from 'express'
import Fastify, { type FastifyInstance } from 'fastify'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'

// Raw bytes over a socket, as an attacker sends them. The registered backend records every
// request it parses; a sentinel server stands for "anywhere else" and must never be reached.

interface Seen {
  method: string
  url: string
  headers: IncomingHttpHeaders
  body: string
}

function recorder(): { server: Server; seen: Seen[] } {
  const seen: Seen[] = []
  const server = createServer((req, res) => {
    let body = ''
    req.setEncoding('latin1')
    req.on('data', (chunk: string) => {
      body += chunk
    })
    req.on('end', () => {
      seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body })
      res.setHeader('content-type', 'application/json')
      res.end('{"ok":true}')
    })
  })
  return { server, seen }
}

const backend = recorder()
const sentinel = recorder()
let sentinelPort = 0
const apps: FastifyInstance[] = []
const servers: Server[] = [backend.server, sentinel.server]
const gates: Gate[] = []

async function listen(server: Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return (server.address() as AddressInfo).port
}

let backendUrl = ''
beforeAll(async () => {
  backendUrl = `http://127.0.0.1:${await listen(backend.server)}/base`
  sentinelPort = await listen(sentinel.server)
})
afterAll(async () => {
  await Promise.all(apps.map((app) => app.close()))
  await Promise.all(gates.map((g) => g.close()))
  await Promise.all(
    servers.map((s) => {
      s.closeAllConnections()
      return new Promise((resolve) => s.close(resolve))
    }),
  )
})
beforeEach(() => {
  backend.seen.length = 0
  sentinel.seen.length = 0
})

/** Writes `raw` and collects everything the gateway answers until it closes (or 3 s pass). */
function exchange(port: number, raw: string): Promise<string> {
  return new Promise((resolve) => {
    const socket = new Socket()
    let answer = ''
    const finish = () => {
      clearTimeout(timer)
      socket.destroy()
      resolve(answer)
    }
    const timer = setTimeout(finish, 3_000)
    socket.setEncoding('latin1')
    socket.on('data', (chunk: string) => {
      answer += chunk
    })
    socket.on('end', finish)
    socket.on('close', finish)
    socket.on('error', finish)
    socket.connect(port, '127.0.0.1', () => socket.write(raw, 'latin1'))
  })
}

const statusOf = (answer: string) => Number(/^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1] ?? 0)
/** Responses in the answer: more than one means the gateway parsed a second, smuggled request. */
const responsesIn = (answer: string) => answer.match(/HTTP\/1\.1 \d{3}/g)?.length ?? 0

const INNER = 'GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n'

function cases(): [string, string][] {
  const S = `127.0.0.1:${sentinelPort}`
  return [
    ['absolute-form target', `GET http://${S}/steal HTTP/1.1\r\nHost: ${S}\r\nConnection: close\r\n\r\n`],
    ['absolute-form https', `GET https://${S}/steal HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`],
    ['//host path', `GET //${S}/steal HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`],
    ['///host path', `GET ///${S}/steal HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`],
    ['Host header elsewhere', `GET /v1/models HTTP/1.1\r\nHost: ${S}\r\nConnection: close\r\n\r\n`],
    ['.. segment', 'GET /v1/../../admin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'],
    ['%2e%2e segment', 'GET /v1/%2e%2e/%2E%2E/admin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'],
    ['..%2f', 'GET /v1/..%2f..%2fadmin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'],
    ['.%2e with backslash', 'GET /v1\\.%2e\\admin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'],
    ['%252e (double-encoded)', 'GET /v1/%252e%252e/admin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'],
    [
      'CRLF encoded in the path',
      'GET /v1/x%0d%0aX-Injected:%20yes HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
    ],
    [
      'bare LF in a header value',
      'GET /v1/models HTTP/1.1\r\nHost: x\r\nX-A: a\nX-Injected: yes\r\nConnection: close\r\n\r\n',
    ],
    [
      'bare CR in a header value',
      'GET /v1/models HTTP/1.1\r\nHost: x\r\nX-A: a\rX-Injected: yes\r\nConnection: close\r\n\r\n',
    ],
    [
      'obs-fold continuation',
      'GET /v1/models HTTP/1.1\r\nHost: x\r\nX-A: a\r\n X-Injected: yes\r\nConnection: close\r\n\r\n',
    ],
    [
      'duplicate Content-Length',
      'POST /v1/chat HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 40\r\nConnection: close\r\n\r\n{"a"}GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n',
    ],
    [
      'Content-Length list',
      'POST /v1/chat HTTP/1.1\r\nHost: x\r\nContent-Length: 4, 40\r\nConnection: close\r\n\r\n{"a"}GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n',
    ],
    [
      'Transfer-Encoding and Content-Length (CL.TE)',
      'POST /v1/chat HTTP/1.1\r\nHost: x\r\nContent-Length: 48\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\nX: y\r\n\r\n',
    ],
    [
      'Transfer-Encoding and Content-Length (TE.CL)',
      'POST /v1/chat HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n2a\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\nX: yyyyy\r\n\r\n0\r\n\r\n',
    ],
    [
      'obfuscated Transfer-Encoding',
      'POST /v1/chat HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\nContent-Length: 4\r\n\r\n{"a"}GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n',
    ],
    [
      'chunked, identity',
      'POST /v1/chat HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n',
    ],
    [
      'a second request inside a declared body',
      `POST /v1/chat HTTP/1.1\r\nHost: x\r\nContent-Length: ${INNER.length}\r\nConnection: close\r\n\r\n${INNER}`,
    ],
    [
      'hop-by-hop header used to strip X-Forwarded-For',
      'GET /v1/models HTTP/1.1\r\nHost: x\r\nConnection: close, X-Forwarded-For, Content-Length\r\n\r\n',
    ],
    ['CONNECT tunnel', `CONNECT ${S} HTTP/1.1\r\nHost: ${S}\r\n\r\n`],
  ]
}

async function fastifyGateway(): Promise<number> {
  const app = Fastify()
  apps.push(app)
  await app.register(fastifyTollgate, { backends: [{ url: backendUrl }] })
  app.all('/*', app.tollgate.forward())
  await app.listen({ port: 0, host: '127.0.0.1' })
  return (app.server.address() as AddressInfo).port
}

async function expressGateway(): Promise<number> {
  const gate = expressTollgate({ backends: [{ url: backendUrl }] })
  gates.push(gate)
  const app = express()
  app.use(gate.forward())
  const server = createServer(app)
  servers.push(server)
  return listen(server)
}

for (const [name, start] of [
  ['Fastify', fastifyGateway],
  ['Express', expressGateway],
] as const) {
  describe(`${name}: hostile request framing and targets`, () => {
    let port = 0
    beforeAll(async () => {
      port = await start()
    })

    it.each(cases().map(([label]) => [label]))('%s', async (label) => {
      const raw = cases().find(([l]) => l === label)![1]
      const answer = await exchange(port, raw)
      if (label === 'a second request inside a declared body') {
        expect(backend.seen.map((r) => [r.method, r.body])).toEqual([['POST', INNER]])
      }
      const status = statusOf(answer)

      // Nothing ever reached a host that is not a registered backend.
      expect(sentinel.seen).toEqual([])
      // At most the one request the client sent reached the backend, under its base path, and
      // nothing the client smuggled became a request or a header of its own.
      expect(backend.seen.length).toBeLessThanOrEqual(1)
      expect(responsesIn(answer)).toBeLessThanOrEqual(1)
      for (const seen of backend.seen) {
        expect(seen.url.startsWith('/base/')).toBe(true)
        expect(seen.url).not.toMatch(/(^|\/|\\)(\.|%2e){1,2}(\/|\\|%2f|%5c|$)/i)
        expect(seen.url).not.toContain('smuggled')
        // Bytes inside a declared body stay body bytes, sent with a length undici computed.
        if (seen.body !== '') expect(seen.headers['content-length']).toBe(String(seen.body.length))
        expect(seen.headers['x-injected']).toBeUndefined()
        expect(seen.headers['x-forwarded-for']).toBe('127.0.0.1')
        expect(seen.headers.host).toBe(new URL(backendUrl).host)
      }
      if (backend.seen.length === 0) {
        // Refused: a 4xx (or the connection closed on a request the HTTP parser would not take).
        expect(status === 0 || (status >= 400 && status < 500)).toBe(true)
      }
    })
  })
}
