import http, { type Server } from 'node:http'
import { tollgate as expressTollgate, type TollgateExpressOptions } from '@tollgate/express'
import fastifyTollgate, { type TollgateFastifyOptions } from '@tollgate/fastify'
import express, { type Express } from 'express'
import Fastify, { type FastifyInstance } from 'fastify'
import type { Cleanup } from './cleanup.js'
import { closeServer } from './cleanup.js'
import { listen, portOf } from './ports.js'

export type Framework = 'Fastify' | 'Express'

export interface Logged {
  warnings: string[]
  logger: { warn(message: string): void }
}

/** A logger that keeps what it is told, for tests of what tollgate reports. */
export function recordingLogger(): Logged {
  const warnings: string[] = []
  return { warnings, logger: { warn: (message: string) => warnings.push(message) } }
}

/** A Fastify app with the plugin registered, routes added by `routes`, listening; closed by `cleanup`. */
export async function startFastify(
  cleanup: Cleanup,
  options: TollgateFastifyOptions,
  routes: (app: FastifyInstance) => void,
): Promise<{ app: FastifyInstance; port: number }> {
  const app = Fastify()
  cleanup.add(() => app.close(), null)
  await app.register(fastifyTollgate, options)
  routes(app)
  await app.listen({ port: 0, host: '127.0.0.1' })
  return { app, port: portOf(app) }
}

/** An Express app over `tollgate(options)`, routes added by `routes`, listening; closed by `cleanup`. */
export async function startExpress(
  cleanup: Cleanup,
  options: TollgateExpressOptions,
  routes: (app: Express, gate: ReturnType<typeof expressTollgate>) => void,
): Promise<{ gate: ReturnType<typeof expressTollgate>; server: Server; port: number }> {
  const gate = expressTollgate(options)
  cleanup.add(() => gate.close(), null)
  const app = express()
  routes(app, gate)
  const server = http.createServer(app)
  const port = await listen(server)
  cleanup.add(() => closeServer(server), null)
  return { gate, server, port }
}
