import type { IncomingMessage, ServerResponse } from 'node:http'
import { afterEach, describe, expect, it } from 'vitest'
import { BalancerError } from '../../src/balance/errors.js'
import type { Balancer } from '../../src/balance/types.js'
import type { ForwarderOptions } from '../../src/forward/forwarder.js'
import {
  type FakeBackend,
  type GatewayOptions,
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

async function backend(...args: Parameters<typeof startBackend>): Promise<FakeBackend> {
  const started = await startBackend(...args)
  open.push(started)
  return started
}

async function gateway(options: ForwarderOptions, gatewayOptions?: GatewayOptions) {
  const started = await startGateway(options, gatewayOptions)
  open.push(started)
  return started
}

function echoJson(_req: IncomingMessage, res: ServerResponse, body: Buffer): void {
  res.writeHead(200, { 'content-type': 'application/json' })
  res.end(JSON.stringify({ received: body.length }))
}

const chatBody = Buffer.from(
  '{ "model":"llama-3-8b",\n  "messages":[{"role":"user","content":"héllo \\u00e9 ✓"}] }',
)

describe('forwarding a request', () => {
  it.each([
    ['streamed from req', false],
    ['already read by a body parser', true],
  ])('delivers the JSON body byte for byte (%s) and passes the answer back', async (_name, preRead) => {
    const model = await backend(echoJson)
    const balancer = new RoundRobinTestBalancer([target('a', model.url)])
    const gw = await gateway({ balancer }, { preRead })

    const res = await request(gw.port, {
      method: 'POST',
      path: '/v1/chat/completions',
      headers: { 'content-type': 'application/json' },
      body: chatBody,
    })

    expect(res.status).toBe(200)
    expect(JSON.parse(res.body.toString())).toEqual({ received: chatBody.length })
    expect(model.requests).toHaveLength(1)
    expect(model.requests[0]!.body.equals(chatBody)).toBe(true)
    expect(model.requests[0]!.method).toBe('POST')
    expect(model.requests[0]!.headers['content-length']).toBe(String(chatBody.length))
    expect(await balancer.allFinishedOnce()).toBe(true)
    expect(balancer.leases[0]!.outcomes[0]).toMatchObject({ ok: true, status: 200 })
  })

  it('keeps the query string and puts the backend base path in front', async () => {
    const model = await backend(echoJson)
    const balancer = new RoundRobinTestBalancer([
      target('slash', `${model.url}/base/`),
      target('bare', `${model.url}/base`),
    ])
    const gw = await gateway({ balancer })

    await request(gw.port, { path: '/v1/models?x=1&y=%2F&z' })
    await request(gw.port, { path: '/v1/models?x=1&y=%2F&z' })

    expect(model.requests.map((r) => r.url)).toEqual([
      '/base/v1/models?x=1&y=%2F&z',
      '/base/v1/models?x=1&y=%2F&z',
    ])
  })

  it('applies a prefix-strip rewrite, and a per-request rewrite function over it', async () => {
    const model = await backend(echoJson)
    const balancer = new RoundRobinTestBalancer([target('a', model.url)])
    const gw = await gateway({ balancer, rewrite: { stripPrefix: '/gw' } })
    const custom = await gateway(
      { balancer },
      { extra: () => ({ rewrite: (path: string) => path.replace('/old/', '/v1/') }) },
    )

    await request(gw.port, { path: '/gw/v1/models?q=1' })
    await request(gw.port, { path: '/gwx/v1/models' })
    await request(custom.port, { path: '/old/models' })

    expect(model.requests.map((r) => r.url)).toEqual(['/v1/models?q=1', '/gwx/v1/models', '/v1/models'])
  })

  it('forwards HEAD without a body and keeps the announced length', async () => {
    const model = await backend((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': '123' })
      res.end()
    })
    const balancer = new RoundRobinTestBalancer([target('a', model.url)])
    const gw = await gateway({ balancer })

    const res = await request(gw.port, { method: 'HEAD', path: '/v1/models' })

    expect(res.status).toBe(200)
    expect(res.headers['content-length']).toBe('123')
    expect(res.body).toHaveLength(0)
    expect(model.requests[0]!.method).toBe('HEAD')
    expect(await balancer.allFinishedOnce()).toBe(true)
  })

  it('hands model and hashKey to the balancer', async () => {
    const model = await backend(echoJson)
    const balancer = new RoundRobinTestBalancer([target('a', model.url)])
    const gw = await gateway(
      { balancer },
      { extra: () => ({ model: 'llama-3-8b', hashKey: 'conversation-7' }) },
    )

    await request(gw.port, { path: '/v1/chat/completions' })

    expect(balancer.contexts).toEqual([{ model: 'llama-3-8b', hashKey: 'conversation-7' }])
  })

  it('answers a BalancerError with its status and details as JSON', async () => {
    const balancer: Balancer = {
      acquire() {
        throw new BalancerError('model "gpt-9" is not served here', 404, 'unknown_model', undefined, {
          models: ['llama-3-8b', 'qwen-2'],
        })
      },
      models: () => ['llama-3-8b', 'qwen-2'],
    }
    const gw = await gateway({ balancer })

    const res = await request(gw.port, {
      method: 'POST',
      path: '/v1/chat/completions',
      body: '{"model":"gpt-9"}',
    })

    expect(res.status).toBe(404)
    expect(res.headers['content-type']).toMatch(/^application\/json/)
    expect(JSON.parse(res.body.toString())).toEqual({
      error: {
        message: 'model "gpt-9" is not served here',
        type: 'invalid_request_error',
        code: 'unknown_model',
        models: ['llama-3-8b', 'qwen-2'],
      },
    })
  })
})

describe('header hygiene', () => {
  it('strips hop-by-hop headers both ways and sets X-Forwarded-*', async () => {
    const model = await backend((_req, res) => {
      res.setHeader('connection', 'keep-alive, X-Backend-Internal')
      res.setHeader('x-backend-internal', 'secret')
      res.setHeader('keep-alive', 'timeout=99')
      res.setHeader('proxy-authenticate', 'Basic')
      res.setHeader('upgrade', 'h2c')
      res.setHeader('trailer', 'x-checksum')
      res.setHeader('set-cookie', ['a=1', 'b=2'])
      res.setHeader('x-request-id', 'r-1')
      res.end('ok')
    })
    const balancer = new RoundRobinTestBalancer([target('a', model.url)])
    const gw = await gateway({ balancer })

    const res = await request(gw.port, {
      method: 'POST',
      path: '/v1/completions',
      headers: [
        'Connection',
        'keep-alive, X-Client-Hop',
        'X-Client-Hop',
        'drop me',
        'Keep-Alive',
        'timeout=5',
        'TE',
        'trailers, deflate',
        'Upgrade',
        'websocket',
        'Proxy-Authorization',
        'Basic c2VjcmV0',
        'Proxy-Connection',
        'keep-alive',
        'X-Forwarded-For',
        '6.6.6.6',
        'X-Forwarded-Host',
        'spoofed.example',
        'X-Forwarded-Proto',
        'https',
        'Forwarded',
        'for=6.6.6.6',
        'Host',
        'gateway.example:8443',
        'Authorization',
        'Bearer sk-123',
        'Content-Type',
        'application/json',
        'Content-Length',
        '2',
      ],
      body: '{}',
    })

    expect(res.status).toBe(200)
    const seen = model.requests[0]!.headers
    for (const name of [
      'x-client-hop',
      'keep-alive',
      'upgrade',
      'proxy-authorization',
      'proxy-connection',
      'forwarded',
    ]) {
      expect(seen, name).not.toHaveProperty(name)
    }
    expect(seen.te).toBe('trailers')
    expect(seen.host).toBe(`127.0.0.1:${model.port}`)
    expect(seen['x-forwarded-for']).toBe('127.0.0.1')
    expect(seen['x-forwarded-proto']).toBe('http')
    expect(seen['x-forwarded-host']).toBe('gateway.example:8443')
    expect(seen.authorization).toBe('Bearer sk-123')
    expect(seen['content-type']).toBe('application/json')

    expect(res.headers).not.toHaveProperty('x-backend-internal')
    expect(res.headers).not.toHaveProperty('proxy-authenticate')
    expect(res.headers).not.toHaveProperty('upgrade')
    expect(res.headers).not.toHaveProperty('trailer')
    // Node writes its own Keep-Alive on the client connection; the backend's value must not leak.
    expect(res.headers['keep-alive']).not.toBe('timeout=99')
    expect(res.headers['set-cookie']).toEqual(['a=1', 'b=2'])
    expect(res.headers['x-request-id']).toBe('r-1')
  })

  it('appends the peer to a trusted X-Forwarded-For chain', async () => {
    const model = await backend(echoJson)
    const balancer = new RoundRobinTestBalancer([target('a', model.url)])
    const gw = await gateway(
      { balancer },
      {
        trustProxy: true,
        extra: () => ({ clientIp: '203.0.113.9', protocol: 'https', host: 'api.example' }),
      },
    )

    await request(gw.port, { headers: { 'x-forwarded-for': '203.0.113.9, 10.0.0.1' } })

    const seen = model.requests[0]!.headers
    expect(seen['x-forwarded-for']).toBe('203.0.113.9, 10.0.0.1, 127.0.0.1')
    expect(seen['x-forwarded-proto']).toBe('https')
    expect(seen['x-forwarded-host']).toBe('api.example')
  })

  it('refuses to add a header value containing CR or LF', async () => {
    const model = await backend(echoJson)
    const balancer = new RoundRobinTestBalancer([target('a', model.url)])
    const gw = await gateway({ balancer }, { extra: () => ({ host: 'api.example\r\nx-injected: 1' }) })

    const res = await request(gw.port)

    expect(res.status).toBe(400)
    expect(JSON.parse(res.body.toString()).error.code).toBe('invalid_header_value')
    expect(model.requests).toHaveLength(0)
  })
})

describe('requests go only to registered backends', () => {
  it('ignores absolute-form targets, //host paths and Host headers', async () => {
    const evil = await backend(echoJson)
    const model = await backend(echoJson)
    const balancer = new RoundRobinTestBalancer([target('a', model.url)])
    const gw = await gateway({ balancer })
    const evilHost = `127.0.0.1:${evil.port}`

    const answers = [
      await request(gw.port, { path: `http://${evilHost}/x?q=1` }),
      await request(gw.port, { path: `HTTPS://${evilHost}` }),
      await request(gw.port, { path: `//${evilHost}/y` }),
      await request(gw.port, { path: `///${evilHost}/w` }),
      await request(gw.port, { path: '/z', headers: { host: evilHost } }),
    ]

    expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 200, 200])
    expect(model.requests.map((r) => r.url)).toEqual([
      '/x?q=1',
      '/',
      `/${evilHost}/y`,
      `/${evilHost}/w`,
      '/z',
    ])
    expect(model.requests.every((r) => r.headers.host === `127.0.0.1:${model.port}`)).toBe(true)
    expect(evil.connections).toBe(0)
  })

  it.each([
    '/v1/../admin',
    '/v1/..',
    '/v1/./models',
    '/v1/%2e%2E/admin',
    '/v1/.%2e/admin',
    '/v1/..%2fadmin',
    '/v1/..\\admin',
    '/..?x=1',
    '*',
    'ftp://127.0.0.1/x',
  ])('refuses the target %s with 400', async (path) => {
    const model = await backend(echoJson)
    const balancer = new RoundRobinTestBalancer([target('a', model.url)])
    const gw = await gateway({ balancer })

    const res = await request(gw.port, { method: path === '*' ? 'OPTIONS' : 'GET', path })

    expect(res.status).toBe(400)
    expect(JSON.parse(res.body.toString()).error).toMatchObject({
      type: 'invalid_request_error',
      code: 'invalid_request_target',
    })
    expect(model.connections).toBe(0)
    expect(balancer.leases).toHaveLength(0)
  })
})
