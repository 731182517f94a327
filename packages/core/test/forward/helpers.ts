import http, { type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { BalancerError } from '../../src/balance/errors.js'
import type {
  AttemptOutcome,
  BackendLease,
  BackendTarget,
  Balancer,
  PickContext,
} from '../../src/balance/types.js'
import {
  createForwarder,
  type Forwarder,
  type ForwarderOptions,
  type ForwardRequest,
} from '../../src/forward/forwarder.js'

/** A lease that remembers every `finish` call, to check each attempt is reported exactly once. */
export interface RecordedLease extends BackendLease {
  readonly outcomes: AttemptOutcome[]
}

/**
 * Stand-in for the real balancer: plain round robin over the given backends, skipping excluded
 * ones, optionally waiting (`hold`) before answering so acquire-time cancellation can be tested.
 */
export class RoundRobinTestBalancer implements Balancer {
  readonly leases: RecordedLease[] = []
  readonly contexts: PickContext[] = []
  readonly aborted: unknown[] = []
  private next = 0
  /** When set, acquire waits until the returned promise's signal aborts (and then rejects). */
  hold = false

  constructor(readonly backends: BackendTarget[]) {}

  acquire(
    ctx: PickContext,
    exclude: ReadonlySet<string>,
    signalSource?: AbortSignal | (() => AbortSignal),
  ): BackendLease | Promise<BackendLease> {
    this.contexts.push({ model: ctx.model, hashKey: ctx.hashKey })
    if (this.hold) {
      // Like the real balancer: the signal is asked for only once the request has to wait.
      const signal = typeof signalSource === 'function' ? signalSource() : signalSource
      return new Promise((_resolve, reject) => {
        signal?.addEventListener('abort', () => {
          this.aborted.push(signal.reason)
          reject(signal.reason)
        })
      })
    }
    for (let i = 0; i < this.backends.length; i++) {
      const backend = this.backends[(this.next + i) % this.backends.length]!
      if (exclude.has(backend.id)) continue
      this.next = (this.next + i + 1) % this.backends.length
      const outcomes: AttemptOutcome[] = []
      const lease: RecordedLease = { backend, outcomes, finish: (outcome) => outcomes.push(outcome) }
      this.leases.push(lease)
      return lease
    }
    throw new BalancerError('no backend can take the request', 503, 'no_backend_available', 2000)
  }

  models(): string[] {
    return []
  }

  /** Every lease handed out has been finished, exactly once (waits a little for late reports). */
  async allFinishedOnce(timeoutMs = 3000): Promise<boolean> {
    await waitFor(() => this.leases.every((lease) => lease.outcomes.length >= 1), timeoutMs)
    await new Promise((resolve) => setTimeout(resolve, 20))
    return this.leases.every((lease) => lease.outcomes.length === 1)
  }
}

export function target(id: string, url: string): BackendTarget {
  return { id, url: new URL(url) }
}

export interface RecordedRequest {
  method: string
  url: string
  headers: http.IncomingHttpHeaders
  rawHeaders: string[]
  body: Buffer
}

export interface FakeBackend {
  readonly url: string
  readonly port: number
  readonly requests: RecordedRequest[]
  /** TCP connections accepted, counted before any HTTP parsing. */
  connections: number
  /** Responses whose connection closed before they finished (the gateway cancelled). */
  cancelled: number
  close(): Promise<void>
}

type BackendHandler = (req: IncomingMessage, res: ServerResponse, body: Buffer) => void

/** A plain `node:http` server standing in for a model server; the handler sees the full body. */
export async function startBackend(
  handler: BackendHandler,
  options: { readBody?: boolean } = {},
): Promise<FakeBackend> {
  const sockets = new Set<Socket>()
  const backend: FakeBackend = {
    url: '',
    port: 0,
    requests: [],
    connections: 0,
    cancelled: 0,
    close: async () => {
      for (const socket of sockets) socket.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
  const server = http.createServer((req, res) => {
    res.on('close', () => {
      if (!res.writableFinished) backend.cancelled++
    })
    const record = (body: Buffer): void => {
      backend.requests.push({
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        rawHeaders: req.rawHeaders,
        body,
      })
      handler(req, res, body)
    }
    if (options.readBody === false) {
      record(Buffer.alloc(0))
      return
    }
    const chunks: Buffer[] = []
    req.on('data', (chunk: Buffer) => chunks.push(chunk))
    req.on('end', () => record(Buffer.concat(chunks)))
  })
  server.on('connection', (socket: Socket) => {
    backend.connections++
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
  })
  const port = await listen(server)
  return Object.assign(backend, { url: `http://127.0.0.1:${port}`, port })
}

function listen(server: Server): Promise<number> {
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port))
  })
}

/** A port nothing listens on: connections to it are refused at once. */
export async function closedPort(): Promise<number> {
  const server = http.createServer()
  const port = await listen(server)
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}

export interface Gateway {
  readonly port: number
  readonly forwarder: Forwarder
  /** The promises `forward()` returned, to check they all settle. */
  readonly forwards: Promise<void>[]
  close(): Promise<void>
}

export interface GatewayOptions {
  /** Read the body before forwarding, as a framework body parser would, and pass it as `body`. */
  preRead?: boolean
  trustProxy?: boolean
  /** Extra fields for every ForwardRequest. */
  extra?: (req: IncomingMessage) => Partial<ForwardRequest>
}

/** A plain `node:http` server that forwards every request, the way an adapter would mount the core. */
export async function startGateway(
  options: ForwarderOptions,
  gatewayOptions: GatewayOptions = {},
): Promise<Gateway> {
  const forwarder = createForwarder(options)
  const forwards: Promise<void>[] = []
  const sockets = new Set<Socket>()
  const forward = (req: IncomingMessage, res: ServerResponse, body: Buffer | undefined): void => {
    forwards.push(
      forwarder.forward({
        req,
        res,
        clientIp: req.socket.remoteAddress,
        trustProxy: gatewayOptions.trustProxy,
        body,
        ...gatewayOptions.extra?.(req),
      }),
    )
  }
  const server = http.createServer((req, res) => {
    if (!gatewayOptions.preRead) {
      forward(req, res, undefined)
      return
    }
    const chunks: Buffer[] = []
    req.on('data', (chunk: Buffer) => chunks.push(chunk))
    req.on('end', () => forward(req, res, Buffer.concat(chunks)))
  })
  server.on('connection', (socket: Socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
  })
  const port = await listen(server)
  return {
    port,
    forwarder,
    forwards,
    close: async () => {
      for (const socket of sockets) socket.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
      await forwarder.destroy()
    },
  }
}

export interface ClientResponse {
  status: number
  headers: http.IncomingHttpHeaders
  body: Buffer
  /** The response ended cleanly (false when the connection was cut mid-body). */
  complete: boolean
}

export interface ClientRequestOptions {
  method?: string
  path?: string
  headers?: http.OutgoingHttpHeaders | string[]
  body?: Buffer | string
}

/** One request on a fresh connection (no agent), so nothing stays open after the test. */
export function request(port: number, options: ClientRequestOptions = {}): Promise<ClientResponse> {
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: '127.0.0.1',
      port,
      method: options.method ?? 'GET',
      path: options.path ?? '/',
      headers: options.headers,
      agent: false,
    })
    req.on('error', reject)
    req.on('response', (res) => {
      const chunks: Buffer[] = []
      res.on('data', (chunk: Buffer) => chunks.push(chunk))
      const done = (): void =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: Buffer.concat(chunks),
          complete: res.complete,
        })
      res.on('end', done)
      res.on('error', done)
      res.on('aborted', done)
    })
    req.end(options.body)
  })
}

export async function waitFor(check: () => boolean, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}
