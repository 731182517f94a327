import http from 'node:http'
import { afterEach, describe, expect, it } from 'vitest'
import { Cleanup, send } from '../helpers/http.js'
import { FRAMEWORKS, type RawBackend, rawBackend, startGateway } from './gateways.js'
import { sleep } from './support.js'

// Clients that upload slowly or too much must cost the backends nothing.

const cleanup = new Cleanup()
afterEach(() => cleanup.run())

interface Upload {
  status: Promise<{ status: number; body: string }>
  socketClosed: Promise<void>
  write(chunk: Buffer | string): void
}

/** A POST whose body the test writes piece by piece; write errors (the gateway hung up) are ignored. */
function upload(port: number, headers: http.OutgoingHttpHeaders): Upload {
  const req = http.request({
    host: '127.0.0.1',
    port,
    method: 'POST',
    path: '/v1/chat/completions',
    headers: { 'content-type': 'application/octet-stream', ...headers },
    agent: false,
  })
  let closed!: () => void
  const socketClosed = new Promise<void>((resolve) => {
    closed = resolve
  })
  req.on('close', () => closed())
  const status = new Promise<{ status: number; body: string }>((resolve, reject) => {
    req.on('response', (res) => {
      let body = ''
      res.on('data', (chunk: Buffer) => {
        body += chunk
      })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
      res.on('error', () => resolve({ status: res.statusCode ?? 0, body }))
    })
    req.on('error', (error) => reject(error))
  })
  status.catch(() => {})
  req.flushHeaders()
  return {
    status,
    socketClosed,
    write: (chunk) => {
      if (!req.destroyed) req.write(chunk, () => {})
    },
  }
}

function echoBackend(): Promise<RawBackend> {
  return rawBackend(cleanup, (req, res) => {
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end('{"ok":true}')
    })
  })
}

describe('Express: a slow uploader', () => {
  it('holds no backend slot while it uploads, and gets 408 at the upload deadline', async () => {
    const backend = await echoBackend()
    const port = await startGateway('Express', cleanup, {
      backends: [{ url: backend.url, maxConcurrency: 1 }],
      queue: { timeoutMs: 200 },
      maxReplayBodyBytes: 1024,
      uploadTimeoutMs: 1_500,
    })
    // Declares more than can be replayed, then trickles.
    const slow = upload(port, { 'content-length': 100_000 })
    slow.write('x'.repeat(10))
    await sleep(200)
    slow.write('x')

    // The only backend slot is free for a client that has its body ready.
    const other = await send(port, { path: '/v1/chat/completions', body: { model: 'm' } })
    expect(other.status).toBe(200)

    const answer = await slow.status
    expect(answer.status).toBe(408)
    expect(JSON.parse(answer.body).error.code).toBe('upload_timeout')
    // Nothing of the unfinished upload reached the backend.
    expect(backend.requests).toBe(1)
  })
})

describe('Express: an uploader that slows down once its body streams to a backend', () => {
  it('loses the backend slot at the upload deadline: 408, and the slot serves the next request', async () => {
    const backend = await echoBackend()
    const port = await startGateway('Express', cleanup, {
      backends: [{ url: backend.url, maxConcurrency: 1 }],
      queue: { timeoutMs: 200 },
      maxReplayBodyBytes: 1024,
      uploadTimeoutMs: 1_000,
    })
    const slow = upload(port, { 'content-length': 100_000 })
    // More than can be replayed arrives at once: the body streams to the backend, on a lease.
    slow.write(Buffer.alloc(4096, 'x'))
    const answer = await slow.status
    expect(answer.status).toBe(408)
    expect(backend.requests).toBe(1)
    const next = await send(port, { path: '/v1/chat/completions', body: { model: 'm' } })
    expect(next.status).toBe(200)
  })
})

for (const framework of FRAMEWORKS) {
  describe(`${framework}: a chunked body over maxBodyBytes`, () => {
    it('gets 413 and no byte of it reaches a backend', async () => {
      const backend = await echoBackend()
      const port = await startGateway(framework, cleanup, {
        backends: [{ url: backend.url }],
        maxReplayBodyBytes: 16 * 1024,
        maxBodyBytes: 64 * 1024,
      })
      const big = upload(port, { 'transfer-encoding': 'chunked' })
      const piece = Buffer.alloc(8 * 1024, 'y')
      let answered = false
      void big.status.then(() => {
        answered = true
      })
      for (let sent = 0; sent < 256 * 1024 && !answered; sent += piece.length) {
        big.write(piece)
        await sleep(5)
      }
      const answer = await big.status
      expect(answer.status).toBe(413)
      expect(backend.requests).toBe(0)
      expect(backend.bodyBytes).toBe(0)
    })
  })
}
