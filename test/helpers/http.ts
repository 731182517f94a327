import http, { type IncomingHttpHeaders, type IncomingMessage, type Server } from 'node:http'
import net, { type Socket } from 'node:net'
import {
  type FakeModelServer,
  type FakeModelServerOptions,
  startFakeModelServer,
} from '../../examples/fake-model-server.js'
import type { Cleanup } from './cleanup.js'
import { listen } from './ports.js'

export { Cleanup, closeServer } from './cleanup.js'
export { closedPort, freePort, listen, portOf } from './ports.js'
export { waitFor } from './wait.js'

/**
 * What the forwarding tests share: fake backends, a sentinel that must never be reached, and
 * clients on fresh connections (no agent), so nothing a test opened outlives it.
 */

export async function fake(cleanup: Cleanup, options: FakeModelServerOptions = {}): Promise<FakeModelServer> {
  const server = await startFakeModelServer(options)
  return cleanup.add(() => server.close(), server)
}

export interface Sentinel {
  readonly port: number
  /** TCP connections accepted: any is a request the gateway should never have made. */
  readonly connections: number
}

/** A TCP server a request must never reach; it counts connections and drops them. */
export async function sentinel(cleanup: Cleanup): Promise<Sentinel> {
  let connections = 0
  const sockets = new Set<Socket>()
  const server = net.createServer((socket) => {
    connections++
    sockets.add(socket)
    socket.destroy()
  })
  const port = await listen(server)
  cleanup.add(
    () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy()
        server.close(() => resolve())
      }),
    null,
  )
  return {
    port,
    get connections() {
      return connections
    },
  }
}

export interface Answer {
  status: number
  headers: IncomingHttpHeaders
  body: Buffer
  /** The response ended cleanly (false when the connection was cut mid-body). */
  complete: boolean
  text(): string
  // biome-ignore lint/suspicious/noExplicitAny: bodies are checked by the assertions, not by types
  json(): any
}

export interface SendOptions {
  /** Default `127.0.0.1`. */
  host?: string
  method?: string
  path?: string
  /** An object, or a flat `[name, value, …]` list to send repeated or odd headers as written. */
  headers?: http.OutgoingHttpHeaders | string[]
  body?: Buffer | string | object
}

/** One request on a fresh connection. A JSON body given as an object gets its content-type. */
export function send(port: number, options: SendOptions = {}): Promise<Answer> {
  let body = options.body
  let headers = options.headers
  if (body !== undefined && !Buffer.isBuffer(body) && typeof body !== 'string') {
    body = JSON.stringify(body)
    if (headers === undefined || !Array.isArray(headers)) {
      headers = { 'content-type': 'application/json', ...headers }
    }
  }
  if (Array.isArray(headers)) {
    // Node adds neither Host nor Content-Length to a header list: an HTTP/1.1 server refuses the first.
    const names = headers.filter((_, i) => i % 2 === 0).map((name) => name.toLowerCase())
    if (!names.includes('host')) headers = ['Host', `127.0.0.1:${port}`, ...headers]
    if (body !== undefined && !names.includes('content-length') && !names.includes('transfer-encoding')) {
      headers = [...headers, 'Content-Length', String(Buffer.byteLength(body as Buffer | string))]
    }
  }
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: options.host ?? '127.0.0.1',
      port,
      method: options.method ?? (body === undefined ? 'GET' : 'POST'),
      path: options.path ?? '/',
      headers,
      agent: false,
      // A hang fails the test rather than the suite.
      timeout: 10_000,
    })
    req.on('timeout', () => req.destroy(new Error('the gateway did not answer within 10 s')))
    req.on('error', reject)
    req.on('response', (res) => {
      const chunks: Buffer[] = []
      res.on('data', (chunk: Buffer) => chunks.push(chunk))
      let settled = false
      const done = (): void => {
        if (settled) return
        settled = true
        const buffer = Buffer.concat(chunks)
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: buffer,
          complete: res.complete,
          text: () => buffer.toString('utf8'),
          json: () => JSON.parse(buffer.toString('utf8')),
        })
      }
      res.on('end', done)
      res.on('error', done)
      res.on('close', done)
    })
    req.end(body)
  })
}

/** Writes `text` as-is on a raw TCP connection and resolves with everything read until the server closes it. */
export function sendRaw(port: number, text: string, timeoutMs = 5_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1')
    const chunks: Buffer[] = []
    const timer = setTimeout(() => socket.destroy(), timeoutMs)
    socket.on('data', (chunk: Buffer) => chunks.push(chunk))
    socket.on('error', reject)
    socket.on('close', () => {
      clearTimeout(timer)
      resolve(Buffer.concat(chunks).toString('latin1'))
    })
    socket.write(text)
  })
}

/** A streaming request in progress: read its events one by one, or cut it off. */
export interface OpenStream {
  status: number
  headers: IncomingHttpHeaders
  /** The next SSE event (without its trailing blank line), or null once the stream ended. */
  nextEvent(): Promise<string | null>
  /** Every event left, until the stream ends. */
  rest(): Promise<string[]>
  /** The response ended cleanly, as opposed to being cut. Meaningful once `rest()` resolved. */
  readonly complete: boolean
  /** Drops the connection, as a client closing a tab does. */
  abort(): void
}

/** Sends a request and resolves once the response headers are in. */
export function openStream(port: number, options: SendOptions): Promise<OpenStream> {
  const body = JSON.stringify(options.body)
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: '127.0.0.1',
      port,
      method: 'POST',
      path: options.path ?? '/v1/chat/completions',
      headers: { 'content-type': 'application/json', ...(options.headers as object) },
      agent: false,
      timeout: 10_000,
    })
    req.on('timeout', () => req.destroy(new Error('the gateway did not answer within 10 s')))
    req.on('error', reject)
    req.on('response', (res: IncomingMessage) => {
      let buffered = ''
      let ended = false
      let wake: (() => void) | undefined
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => {
        buffered += chunk
        wake?.()
      })
      const onEnd = () => {
        ended = true
        wake?.()
      }
      res.on('end', onEnd)
      res.on('close', onEnd)
      res.on('error', onEnd)
      const nextEvent = async (): Promise<string | null> => {
        for (;;) {
          const at = buffered.indexOf('\n\n')
          if (at >= 0) {
            const event = buffered.slice(0, at)
            buffered = buffered.slice(at + 2)
            return event
          }
          if (ended) return null
          await new Promise<void>((r) => {
            wake = r
          })
          wake = undefined
        }
      }
      resolve({
        status: res.statusCode ?? 0,
        headers: res.headers,
        nextEvent,
        rest: async () => {
          const events: string[] = []
          for (let e = await nextEvent(); e !== null; e = await nextEvent()) events.push(e)
          return events
        },
        get complete() {
          return res.complete
        },
        abort: () => req.destroy(),
      })
    })
    req.end(body)
  })
}

/** A chat completion request body; `extra` overrides or adds fields. */
export function chat(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { model: 'fake-model', messages: [{ role: 'user', content: 'hi' }], ...extra }
}

/** How many answers each backend gave, by its `x-backend` header. */
export function countBy(answers: Answer[]): Record<string, number> {
  const counts: Record<string, number> = {}
  for (const a of answers) {
    const name = String(a.headers['x-backend'])
    counts[name] = (counts[name] ?? 0) + 1
  }
  return counts
}

/** A request the test can cut off before its answer arrives; `answer` settles either way. */
export function abortable(port: number, options: SendOptions): { abort(): void; answer: Promise<unknown> } {
  const req = http.request({
    host: '127.0.0.1',
    port,
    method: 'POST',
    path: options.path ?? '/v1/chat/completions',
    headers: { 'content-type': 'application/json', ...(options.headers as object) },
    agent: false,
  })
  const answer = new Promise<unknown>((resolve) => {
    req.on('error', resolve)
    req.on('close', () => resolve(undefined))
  })
  req.end(JSON.stringify(options.body))
  return { abort: () => req.destroy(), answer }
}

/** Open TCP connections on a server, e.g. to see the gateway drop its upstream socket. */
export function openConnections(server: Server): Promise<number> {
  return new Promise((resolve, reject) =>
    server.getConnections((error, count) => (error ? reject(error) : resolve(count))),
  )
}
