import http, { type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { BackendsHandle, GatewayOptions } from '@tollgate/core'
import { tollgate as expressTollgate } from '@tollgate/express'
import fastifyTollgate from '@tollgate/fastify'
import express from 'express'
import Fastify from 'fastify'
import { type Cleanup, closeServer, listen } from './http.js'

export interface RoutingGateway {
  port: number
  backends: BackendsHandle
}

export type StartRoutingGateway = (
  cleanup: Cleanup,
  options: GatewayOptions<unknown>,
) => Promise<RoutingGateway>

/** Both adapters with `POST /v1/chat/completions` forwarded and nothing else: the routing tests' gateway. */
export const ROUTING_GATEWAYS: [string, StartRoutingGateway][] = [
  [
    'Fastify',
    async (cleanup, options) => {
      const app = Fastify()
      cleanup.add(() => app.close(), null)
      await app.register(fastifyTollgate, options)
      app.post('/v1/chat/completions', app.tollgate.forward())
      await app.listen({ port: 0, host: '127.0.0.1' })
      return { port: (app.server.address() as AddressInfo).port, backends: app.tollgate.backends }
    },
  ],
  [
    'Express',
    async (cleanup, options) => {
      const gate = expressTollgate(options)
      cleanup.add(() => gate.close(), null)
      const app = express()
      app.post('/v1/chat/completions', gate.forward())
      const server = http.createServer(app)
      const port = await listen(server)
      cleanup.add(() => closeServer(server), null)
      return { port, backends: gate.backends }
    },
  ],
]

export interface MetricsSwitch {
  url: string
  /** From now on `/metrics` answers 500 (true) or is passed through again (false). */
  breakMetrics(broken: boolean): void
}

/**
 * A pass-through in front of a backend whose `/metrics` can be made to fail, as a server whose
 * exporter breaks while it keeps serving requests.
 */
export async function metricsSwitch(cleanup: Cleanup, target: string): Promise<MetricsSwitch> {
  let broken = false
  const origin = new URL(target)
  const server: Server = http.createServer((req, res) => {
    if (broken && req.url === '/metrics') {
      res.writeHead(500).end('exporter down')
      return
    }
    const upstream = http.request(
      {
        host: origin.hostname,
        port: origin.port,
        method: req.method,
        path: req.url,
        headers: req.headers,
        agent: false,
      },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers)
        answer.pipe(res)
      },
    )
    upstream.on('error', () => res.destroy())
    res.on('close', () => upstream.destroy())
    req.pipe(upstream)
  })
  const port = await listen(server)
  cleanup.add(() => closeServer(server), null)
  return {
    url: `http://127.0.0.1:${port}`,
    breakMetrics: (value) => {
      broken = value
    },
  }
}
