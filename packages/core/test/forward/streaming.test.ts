import http, { type IncomingMessage, type ServerResponse } from 'node:http'
import { afterEach, describe, expect, it } from 'vitest'
import type { AttemptOutcome, BackendLease, Balancer } from '../../src/balance/types.js'
import type { ForwarderOptions } from '../../src/forward/forwarder.js'
import { RoundRobinTestBalancer, startBackend, startGateway, target, waitFor } from './helpers.js'

const open: Array<{ close(): Promise<void> }> = []
const clients: http.ClientRequest[] = []
afterEach(async () => {
  for (const client of clients.splice(0)) client.destroy()
  await Promise.all(open.splice(0).map((resource) => resource.close()))
})

async function backend(handler: (req: IncomingMessage, res: ServerResponse, body: Buffer) => void) {
  const started = await startBackend(handler)
  open.push(started)
  return started
}

async function gateway(options: ForwarderOptions) {
  const started = await startGateway(options)
  open.push(started)
  return started
}

/** A streaming client: the test sees each chunk as it arrives, and can drop the connection at any point. */
function openStream(port: number, path = '/v1/chat/completions') {
  const chunks: string[] = []
  let response: IncomingMessage | undefined
  let complete: boolean | undefined
  const client = http.request({ host: '127.0.0.1', port, method: 'POST', path, agent: false })
  clients.push(client)
  client.on('error', () => {})
  client.on('response', (res) => {
    response = res
    res.setEncoding('utf8')
    res.on('data', (chunk: string) => chunks.push(chunk))
    res.on('end', () => {
      complete = res.complete
    })
    res.on('error', () => {})
    res.on('aborted', () => {
      complete = false
    })
    res.on('close', () => {
      complete ??= res.complete
    })
  })
  client.end('{"stream":true}')
  return {
    client,
    chunks,
    text: () => chunks.join(''),
    get response() {
      return response
    },
    get complete() {
      return complete
    },
  }
}

function sseHeaders(res: ServerResponse): void {
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' })
}

describe('streaming responses', () => {
  it('delivers an event stream chunk by chunk, before the backend has finished', async () => {
    let release!: () => void
    const received = new Promise<void>((resolve) => {
      release = resolve
    })
    let finished = false
    const model = await backend((_req, res) => {
      sseHeaders(res)
      res.write('data: {"token":"Hel"}\n\n')
      // Continues only once the client has shown it received the first event.
      void received.then(() => {
        res.write('data: {"token":"lo"}\n\n')
        res.end('data: [DONE]\n\n')
        finished = true
      })
    })
    const balancer = new RoundRobinTestBalancer([target('a', model.url)])
    const gw = await gateway({ balancer })

    const stream = openStream(gw.port)
    await waitFor(() => stream.text().includes('"Hel"'))
    expect(finished).toBe(false)
    expect(stream.response?.headers['content-type']).toBe('text/event-stream')
    expect(stream.response?.headers).not.toHaveProperty('content-encoding')
    release()
    await waitFor(() => stream.complete !== undefined)

    expect(stream.complete).toBe(true)
    expect(stream.text()).toBe('data: {"token":"Hel"}\n\ndata: {"token":"lo"}\n\ndata: [DONE]\n\n')
    expect(await balancer.allFinishedOnce()).toBe(true)
    expect(balancer.leases[0]!.outcomes[0]).toMatchObject({ ok: true, status: 200 })
  })

  it('sends the headers of an event stream before the first event', async () => {
    const model = await backend((_req, res) => {
      sseHeaders(res)
      res.flushHeaders()
    })
    const balancer = new RoundRobinTestBalancer([target('a', model.url)])
    const gw = await gateway({ balancer })

    const stream = openStream(gw.port)
    await waitFor(() => stream.response !== undefined)

    expect(stream.response!.statusCode).toBe(200)
  })
})

describe('the client going away cancels the upstream request', () => {
  it('while the backend has not answered yet', async () => {
    const model = await backend(() => {})
    const balancer = new RoundRobinTestBalancer([target('a', model.url)])
    const gw = await gateway({ balancer })

    const stream = openStream(gw.port)
    await waitFor(() => model.requests.length === 1)
    stream.client.destroy()

    await waitFor(() => model.cancelled === 1)
    await Promise.all(gw.forwards)
    expect(await balancer.allFinishedOnce()).toBe(true)
    // A cancellation is not the backend's failure.
    expect(balancer.leases[0]!.outcomes[0]!.ok).toBe(true)
  })

  it('mid-stream', async () => {
    const model = await backend((_req, res) => {
      sseHeaders(res)
      res.write('data: {"token":"a"}\n\n')
      const timer = setInterval(() => res.write('data: {"token":"b"}\n\n'), 20)
      res.on('close', () => clearInterval(timer))
    })
    const balancer = new RoundRobinTestBalancer([target('a', model.url)])
    const gw = await gateway({ balancer })

    const stream = openStream(gw.port)
    await waitFor(() => stream.chunks.length >= 2)
    stream.client.destroy()

    await waitFor(() => model.cancelled === 1)
    await Promise.all(gw.forwards)
    expect(await balancer.allFinishedOnce()).toBe(true)
    expect(balancer.leases[0]!.outcomes[0]).toMatchObject({ ok: true, status: 200 })
  })

  it('while waiting for a backend in acquire', async () => {
    const model = await backend(() => {})
    const balancer = new RoundRobinTestBalancer([target('a', model.url)])
    balancer.hold = true
    const gw = await gateway({ balancer })

    const stream = openStream(gw.port)
    await waitFor(() => balancer.contexts.length === 1)
    stream.client.destroy()

    await waitFor(() => balancer.aborted.length === 1)
    await Promise.all(gw.forwards)
    expect(model.connections).toBe(0)
  })

  it('gives back, unused, a lease granted after the client left', async () => {
    const model = await backend(() => {})
    let grant!: () => void
    const lease = { backend: target('a', model.url), outcomes: [] as AttemptOutcome[] }
    const balancer: Balancer = {
      // Ignores the abort signal on purpose.
      acquire: () =>
        new Promise<BackendLease>((resolve) => {
          grant = () => resolve({ backend: lease.backend, finish: (outcome) => lease.outcomes.push(outcome) })
        }),
      models: () => [],
    }
    const gw = await gateway({ balancer })

    const stream = openStream(gw.port)
    await waitFor(() => grant !== undefined)
    stream.client.destroy()
    await Promise.all(gw.forwards)
    grant()

    await waitFor(() => lease.outcomes.length === 1)
    expect(model.connections).toBe(0)
  })
})

describe('a backend failing mid-stream', () => {
  it('ends an event stream with an error event', async () => {
    const model = await backend((_req, res) => {
      sseHeaders(res)
      res.write('data: {"token":"a"}\n\n')
      setTimeout(() => res.socket?.destroy(), 30)
    })
    const balancer = new RoundRobinTestBalancer([target('a', model.url)])
    const gw = await gateway({ balancer })

    const stream = openStream(gw.port)
    await waitFor(() => stream.complete !== undefined)

    const text = stream.text()
    expect(text.startsWith('data: {"token":"a"}\n\n')).toBe(true)
    const errorEvent = text.slice('data: {"token":"a"}\n\n'.length)
    expect(errorEvent).toMatch(/^event: error\ndata: (\{.*\})\n\n$/)
    const data = JSON.parse(errorEvent.split('\n')[1]!.slice('data: '.length))
    expect(data.error).toMatchObject({ type: 'server_error', code: 'backend_stream_failed' })
    expect(await balancer.allFinishedOnce()).toBe(true)
    expect(balancer.leases[0]!.outcomes[0]).toMatchObject({ ok: false, status: 200 })
    expect(balancer.leases[0]!.outcomes[0]!.error).toBeInstanceOf(Error)
  })

  it('aborts an event stream cut in the middle of an event, so no half event is completed', async () => {
    const model = await backend((_req, res) => {
      sseHeaders(res)
      res.write('data: {"token":"a"}\n\ndata: {"tok')
      setTimeout(() => res.socket?.destroy(), 30)
    })
    const balancer = new RoundRobinTestBalancer([target('a', model.url)])
    const gw = await gateway({ balancer })

    const stream = openStream(gw.port)
    await waitFor(() => stream.complete !== undefined)

    expect(stream.complete).toBe(false)
    expect(stream.text()).not.toContain('event: error')
  })

  it('aborts any other response', async () => {
    const model = await backend((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/x-ndjson' })
      res.write('{"token":"a"}\n')
      setTimeout(() => res.socket?.destroy(), 30)
    })
    const balancer = new RoundRobinTestBalancer([target('a', model.url)])
    const gw = await gateway({ balancer })

    const stream = openStream(gw.port)
    await waitFor(() => stream.complete !== undefined)

    expect(stream.complete).toBe(false)
    expect(stream.text()).toBe('{"token":"a"}\n')
    expect(await balancer.allFinishedOnce()).toBe(true)
    expect(balancer.leases[0]!.outcomes[0]!.ok).toBe(false)
  })

  it('aborts a response whose announced length is not reached', async () => {
    const model = await backend((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': '100' })
      res.write('{"partial":')
      setTimeout(() => res.socket?.destroy(), 30)
    })
    const balancer = new RoundRobinTestBalancer([target('a', model.url)])
    const gw = await gateway({ balancer })

    const stream = openStream(gw.port)
    await waitFor(() => stream.complete !== undefined)

    expect(stream.complete).toBe(false)
  })
})

describe('the per-request observer', () => {
  it('sees the response start, every chunk and the end, and may replace a buffered request body', async () => {
    let received = ''
    const model = await backend((_req, res, body) => {
      received = body.toString()
      sseHeaders(res)
      res.write('data: {"token":"Hel"}\n\n')
      res.end('data: [DONE]\n\n')
    })
    const balancer = new RoundRobinTestBalancer([target('a', model.url)])
    const seen: string[] = []
    let data = ''
    const gw = await startGateway(
      { balancer },
      {
        extra: () => ({
          observer: {
            requestBody: (body) => Buffer.from(body.toString().replace('}', ',"stream_options":{}}')),
            responseStart: (status) => seen.push(`start ${status}`),
            responseData: (chunk) => {
              data += chunk.toString()
            },
            responseEnd: (complete) => seen.push(`end ${complete}`),
          },
        }),
      },
    )
    open.push(gw)
    const stream = openStream(gw.port)
    await waitFor(() => stream.complete !== undefined)
    expect(stream.complete).toBe(true)
    expect(received).toBe('{"stream":true,"stream_options":{}}')
    expect(seen).toEqual(['start 200', 'end true'])
    expect(data).toBe(stream.text())
  })

  it('cannot break the response by throwing', async () => {
    const model = await backend((_req, res) => {
      sseHeaders(res)
      res.end('data: [DONE]\n\n')
    })
    const balancer = new RoundRobinTestBalancer([target('a', model.url)])
    const unexpected: unknown[] = []
    const throwing = () => {
      throw new Error('observer bug')
    }
    const gw = await startGateway(
      { balancer, onUnexpectedError: (error) => unexpected.push(error) },
      {
        extra: () => ({
          observer: { responseStart: throwing, responseData: throwing, responseEnd: throwing },
        }),
      },
    )
    open.push(gw)
    const stream = openStream(gw.port)
    await waitFor(() => stream.complete !== undefined)
    expect(stream.complete).toBe(true)
    expect(stream.text()).toBe('data: [DONE]\n\n')
    expect(unexpected.length).toBeGreaterThan(0)
  })
})
