import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import type { BackendTarget } from '../../src/balance/types.js'
import {
  type FakeBackend,
  RoundRobinTestBalancer,
  request,
  startBackend,
  startGateway,
  target,
} from './helpers.js'

const open: Array<{ close(): Promise<void> }> = []
afterEach(async () => {
  await Promise.all(open.splice(0).map((resource) => resource.close()))
})

interface ClosingBackend {
  readonly backend: FakeBackend
  /** Requests that arrived on a connection this server had already given up. */
  stale: number
}

/**
 * Like llama-server: after a streamed response it still says `Keep-Alive` but is done with the
 * connection. Here it closes it when the next request arrives on it, which is the moment a pooled
 * client notices; the request is never read.
 */
async function closesAfterStreams(name: string, brokenAfterStream = false): Promise<ClosingBackend> {
  const streamed = new WeakSet<Socket>()
  let broken = false
  const state = { stale: 0 } as ClosingBackend
  const backend = await startBackend(
    (req: IncomingMessage, res: ServerResponse) => {
      const socket = req.socket
      if (streamed.has(socket) || broken) {
        state.stale++
        socket.end()
        return
      }
      const stream = req.url?.includes('stream') === true
      if (stream) {
        streamed.add(socket)
        broken = brokenAfterStream
        res.writeHead(200, { 'content-type': 'text/event-stream', 'x-backend': name })
        res.write('data: {"choices":[{"delta":{"content":"hi"}}]}\n\n')
        res.end('data: {"choices":[{"delta":{},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n')
        return
      }
      res.writeHead(200, { 'content-type': 'application/json', 'x-backend': name })
      res.end('{"ok":true}')
    },
    { readBody: false },
  )
  open.push(backend)
  return Object.assign(state, { backend })
}

async function gatewayOver(backends: BackendTarget[]) {
  const balancer = new RoundRobinTestBalancer(backends)
  const gateway = await startGateway({ balancer })
  open.push(gateway)
  return { balancer, gateway }
}

const body = Buffer.from(JSON.stringify({ model: 'm', stream: true, messages: [] }))

function send(port: number, path: '/stream' | '/json') {
  return request(port, {
    method: 'POST',
    path,
    headers: { 'content-type': 'application/json' },
    body: path === '/stream' ? body : Buffer.from('{"model":"m"}'),
  })
}

describe('a backend that closes connections after streamed responses', () => {
  it('is retried over a fresh connection, on the same backend, at no cost to its health', async () => {
    const a = await closesAfterStreams('a')
    const b = await closesAfterStreams('b')
    const { balancer, gateway } = await gatewayOver([target('a', a.backend.url), target('b', b.backend.url)])

    expect((await send(gateway.port, '/stream')).headers['x-backend']).toBe('a')
    expect((await send(gateway.port, '/json')).headers['x-backend']).toBe('b')
    // Round robin is back on a, whose pooled connection a closed after the stream.
    const third = await send(gateway.port, '/json')

    expect(third.status).toBe(200)
    expect(third.headers['x-backend']).toBe('a')
    expect(a.stale).toBe(1)
    // One lease per request, each finished once and as a success: no failure reached a's health,
    // its load or the request's attempts.
    expect(balancer.leases.map((lease) => lease.backend.id)).toEqual(['a', 'b', 'a'])
    expect(await balancer.allFinishedOnce()).toBe(true)
    expect(balancer.leases.flatMap((lease) => lease.outcomes.map((outcome) => outcome.ok))).toEqual([
      true,
      true,
      true,
    ])
  })

  it('learns it: later streamed requests to that backend do not leave a closed connection behind', async () => {
    const a = await closesAfterStreams('a')
    const { balancer, gateway } = await gatewayOver([target('a', a.backend.url)])

    await send(gateway.port, '/stream')
    await send(gateway.port, '/json')
    expect(a.stale).toBe(1)
    for (let i = 0; i < 3; i++) {
      expect((await send(gateway.port, '/stream')).status).toBe(200)
      expect((await send(gateway.port, '/json')).status).toBe(200)
    }
    expect(a.stale).toBe(1)
    expect(balancer.leases.every((lease) => lease.outcomes.every((outcome) => outcome.ok))).toBe(true)
  })

  it('is told up front with keepAliveAfterStreams: false, and never meets a closed connection', async () => {
    const a = await closesAfterStreams('a')
    const { gateway } = await gatewayOver([{ ...target('a', a.backend.url), keepAliveAfterStreams: false }])

    for (let i = 0; i < 3; i++) {
      expect((await send(gateway.port, '/stream')).status).toBe(200)
      expect((await send(gateway.port, '/json')).status).toBe(200)
    }
    expect(a.stale).toBe(0)
  })

  it('counts a fresh connection that fails too as a failure of the backend, and fails over', async () => {
    const a = await closesAfterStreams('a', true)
    const b = await closesAfterStreams('b')
    const { balancer, gateway } = await gatewayOver([target('a', a.backend.url), target('b', b.backend.url)])
    await send(gateway.port, '/stream')
    await send(gateway.port, '/json')

    const third = await send(gateway.port, '/json')
    expect(third.status).toBe(200)
    expect(third.headers['x-backend']).toBe('b')
    // The pooled connection, then the fresh one.
    expect(a.stale).toBe(2)
    expect(balancer.leases.map((lease) => lease.backend.id)).toEqual(['a', 'b', 'a', 'b'])
    expect(balancer.leases[2]!.outcomes.map((outcome) => outcome.ok)).toEqual([false])
  })
})
