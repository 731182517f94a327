import http, { type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tollgate as expressTollgate } from '@tollgate/express'
import fastifyTollgate from '@tollgate/fastify'
import express from 'express'
import Fastify from 'fastify'
import { type Cleanup, closeServer } from '../helpers/http.js'

/** Both adapters, for tests that must hold for each. */
export const FRAMEWORKS = ['Fastify', 'Express'] as const
export type Framework = (typeof FRAMEWORKS)[number]

/**
 * A gateway with `POST /v1/chat/completions` forwarded (with `forwardOptions`), on port 0, closed
 * by `cleanup`. `options` are the adapter's options (`backends` included).
 */
export async function startGateway(
  framework: Framework,
  cleanup: Cleanup,
  options: Record<string, unknown>,
  forwardOptions: Record<string, unknown> = {},
): Promise<number> {
  if (framework === 'Fastify') {
    const app = Fastify()
    cleanup.add(() => app.close(), null)
    await app.register(fastifyTollgate, options as never)
    app.post('/v1/chat/completions', app.tollgate.forward(forwardOptions as never))
    await app.listen({ port: 0, host: '127.0.0.1' })
    return (app.server.address() as AddressInfo).port
  }
  const gate = expressTollgate(options as never)
  const app = express()
  app.post('/v1/chat/completions', gate.forward(forwardOptions as never))
  const server = http.createServer(app)
  cleanup.add(() => gate.close(), null)
  cleanup.add(() => closeServer(server), null)
  return listen(server)
}

export async function listen(server: Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return (server.address() as AddressInfo).port
}

export interface RawBackend {
  readonly url: string
  /** Requests whose headers arrived. */
  readonly requests: number
  /** Body bytes received, over every request. */
  readonly bodyBytes: number
}

/** A backend whose every answer `respond` writes by hand (1xx, close-delimited bodies, cuts). */
export async function rawBackend(
  cleanup: Cleanup,
  respond: (req: IncomingMessage, res: ServerResponse) => void,
): Promise<RawBackend> {
  const state = { requests: 0, bodyBytes: 0 }
  const server = http.createServer((req, res) => {
    state.requests++
    req.on('data', (chunk: Buffer) => {
      state.bodyBytes += chunk.length
    })
    respond(req, res)
  })
  const port = await listen(server)
  cleanup.add(() => closeServer(server), null)
  return {
    url: `http://127.0.0.1:${port}`,
    get requests() {
      return state.requests
    },
    get bodyBytes() {
      return state.bodyBytes
    },
  }
}
