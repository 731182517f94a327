import net from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { Cleanup, send } from '../helpers/http.js'
import { FRAMEWORKS, listen, rawBackend, startGateway } from './gateways.js'

// Backends that answer in ways HTTP allows but a naive relay gets wrong: informational responses
// before the final one, and event streams delimited by closing the connection.

const cleanup = new Cleanup()
afterEach(() => cleanup.run())

/** A backend that writes `response` as raw bytes once a request's headers are in, then closes. */
async function rawBytesBackend(response: string): Promise<string> {
  const sockets = new Set<net.Socket>()
  const server = net.createServer((socket) => {
    sockets.add(socket)
    let head = ''
    socket.on('data', (chunk: Buffer) => {
      if (head.includes('\r\n\r\n')) return
      head += chunk.toString('latin1')
      if (head.includes('\r\n\r\n')) socket.end(response)
    })
    socket.on('error', () => {})
  })
  const port = await listen(server as never)
  cleanup.add(
    () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy()
        server.close(() => resolve())
      }),
    null,
  )
  return `http://127.0.0.1:${port}`
}

const SSE_HEAD = 'HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n'
const CHUNK =
  'data: {"object":"chat.completion.chunk","choices":[{"delta":{"content":"hel"},"finish_reason":null}]}\n\n'
const LAST = 'data: {"object":"chat.completion.chunk","choices":[{"delta":{},"finish_reason":"stop"}]}\n\n'

const streamRequest = (stream: boolean) => ({
  path: '/v1/chat/completions',
  body: { model: 'fake-model', stream, messages: [{ role: 'user', content: 'hi' }] },
})

/** The client can tell the stream did not finish: cut, or ended with an SSE error event. */
const visiblyFailed = (answer: { complete: boolean; text(): string }) =>
  !answer.complete || answer.text().includes('event: error')

for (const framework of FRAMEWORKS) {
  describe(`${framework}: unusual backend responses`, () => {
    it('passes the final response on after a 103 Early Hints', async () => {
      const backend = await rawBackend(cleanup, (req, res) => {
        req.resume()
        res.writeEarlyHints({ link: '</style.css>; rel=preload; as=style' })
        setImmediate(() => {
          res.writeHead(200, { 'content-type': 'application/json' })
          res.end('{"ok":true}')
        })
      })
      const port = await startGateway(framework, cleanup, { backends: [{ url: backend.url }] })
      const answer = await send(port, { path: '/v1/chat/completions', body: { model: 'm' } })
      expect(answer.status).toBe(200)
      expect(answer.json()).toEqual({ ok: true })
      expect(answer.complete).toBe(true)
    })

    it('makes a close-delimited event stream cut mid-event visibly failed', async () => {
      const url = await rawBytesBackend(`${SSE_HEAD}${CHUNK}data: {"object":"chat.completion.chunk","choi`)
      const port = await startGateway(framework, cleanup, { backends: [{ url }] })
      const answer = await send(port, streamRequest(true))
      expect(answer.status).toBe(200)
      expect(answer.text()).toContain(CHUNK)
      expect(visiblyFailed(answer)).toBe(true)
    })

    it('ends an OpenAI stream that stops between events without [DONE] with an error event', async () => {
      const url = await rawBytesBackend(`${SSE_HEAD}${CHUNK}${CHUNK}`)
      const port = await startGateway(framework, cleanup, { backends: [{ url }] })
      const answer = await send(port, streamRequest(true))
      expect(answer.status).toBe(200)
      expect(answer.text().startsWith(`${CHUNK}${CHUNK}`)).toBe(true)
      expect(answer.text()).toContain('event: error')
    })

    it('passes a finished close-delimited stream on as complete, and a non-OpenAI one too', async () => {
      const done = await rawBytesBackend(`${SSE_HEAD}${CHUNK}${LAST}data: [DONE]\n\n`)
      const port = await startGateway(framework, cleanup, { backends: [{ url: done }] })
      const answer = await send(port, streamRequest(true))
      expect(answer.complete).toBe(true)
      expect(answer.text()).toBe(`${CHUNK}${LAST}data: [DONE]\n\n`)

      // Not asked as an OpenAI stream: its end at an event boundary is its own business.
      const other = await rawBytesBackend(`${SSE_HEAD}event: ping\ndata: 1\n\n`)
      const otherPort = await startGateway(framework, cleanup, { backends: [{ url: other }] })
      const plain = await send(otherPort, streamRequest(false))
      expect(plain.complete).toBe(true)
      expect(plain.text()).toBe('event: ping\ndata: 1\n\n')
    })
  })
}
