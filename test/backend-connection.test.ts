import type { TollgateExpressOptions } from '@tollgate/express'
import { afterEach, describe, expect, it } from 'vitest'
import { type Framework, startExpress, startFastify } from './helpers/gateways.js'
import { Cleanup, chat, fake, send } from './helpers/http.js'

const cleanup = new Cleanup()
afterEach(() => cleanup.run())

const SECRET = 'Bearer sk-provider-secret'

async function start(
  framework: Framework,
  options: TollgateExpressOptions,
): Promise<{ port: number; snapshot: () => unknown }> {
  if (framework === 'Fastify') {
    const { app, port } = await startFastify(cleanup, options as never, (app) => {
      app.post('/v1/chat/completions', app.tollgate.forward())
    })
    return { port, snapshot: () => app.tollgate.backends.snapshot() }
  }
  const { gate, port } = await startExpress(cleanup, options, (app, gate) => {
    app.post('/v1/chat/completions', gate.forward())
  })
  return { port, snapshot: () => gate.backends.snapshot() }
}

const ask = (port: number, body: object, headers: Record<string, string> = {}) =>
  send(port, {
    path: '/v1/chat/completions',
    body,
    headers: { 'content-type': 'application/json', ...headers },
  })

describe.each(['Fastify', 'Express'] as const)('%s: per-backend connection settings', (framework) => {
  it("adds the backend's headers, replacing the client's Authorization, and never shows them", async () => {
    const backend = await fake(cleanup)
    const { port, snapshot } = await start(framework, {
      backends: [{ url: backend.url, id: 'provider', headers: { authorization: SECRET, 'X-Org': 'org-1' } }],
    })
    const answer = await ask(port, chat(), { authorization: 'Bearer client-key' })
    expect(answer.status).toBe(200)
    const headers = backend.lastRequest!.headers
    expect(headers.authorization).toBe(SECRET)
    expect(headers['x-org']).toBe('org-1')
    expect(backend.lastRequest!.rawHeaders.filter((h) => h.toLowerCase() === 'authorization')).toHaveLength(1)
    expect(JSON.stringify(snapshot())).not.toContain('sk-provider-secret')
    expect(answer.text()).not.toContain('sk-provider-secret')
  })

  it("passes the client's Authorization by default, and drops it with forwardAuthorization: false", async () => {
    const open = await fake(cleanup)
    const closed = await fake(cleanup)
    const { port } = await start(framework, {
      backends: [
        { url: open.url, id: 'open', models: ['a'] },
        { url: closed.url, id: 'closed', models: ['b'], forwardAuthorization: false },
      ],
    })
    await ask(port, chat({ model: 'a' }), { authorization: 'Bearer client-key' })
    await ask(port, chat({ model: 'b' }), { authorization: 'Bearer client-key' })
    expect(open.lastRequest!.headers.authorization).toBe('Bearer client-key')
    expect(closed.lastRequest!.headers.authorization).toBeUndefined()
  })

  it('renames the model for the backend that knows it by another name, and forwards under a base path', async () => {
    const backend = await fake(cleanup, { models: ['provider-model-2024'] })
    const { port } = await start(framework, {
      backends: [
        {
          url: `${backend.url}/base`,
          id: 'renamed',
          models: ['fast'],
          modelNames: { fast: 'provider-model-2024' },
        },
      ],
    })
    const body = { model: 'fast', messages: [{ role: 'user', content: 'the word "model": stays' }] }
    const answer = await ask(port, body)
    const received = JSON.parse(backend.lastRequest!.body.toString('utf8'))
    expect(received).toEqual({ ...body, model: 'provider-model-2024' })
    expect(backend.lastRequest!.url).toBe('/base/v1/chat/completions')
    expect(answer.status).toBe(404) // the fake serves no /base prefix: what matters is what it received
  })
})

describe('per-backend connection settings: option errors', () => {
  it('names the header and never shows its value', async () => {
    const { tollgate } = await import('@tollgate/express')
    expect(() =>
      tollgate({ backends: [{ url: 'http://127.0.0.1:1', headers: { authorization: 'sk-secret\r\nx' } }] }),
    ).toThrow(
      /option "backends\[0\]\.headers\.authorization" must not contain CR, LF or NUL \(value not shown\)/,
    )
    try {
      tollgate({ backends: [{ url: 'http://127.0.0.1:1', headers: { authorization: 'sk-secret\nx' } }] })
    } catch (error) {
      expect(String(error)).not.toContain('sk-secret')
    }
    expect(() => tollgate({ backends: [{ url: 'http://127.0.0.1:1', headers: { host: 'x' } }] })).toThrow(
      /backends\[0\]\.headers\.host/,
    )
    expect(() => tollgate({ backends: [{ url: 'http://127.0.0.1:1', modelNames: { a: 'b' } }] })).toThrow(
      /backends\[0\]\.models/,
    )
  })
})
