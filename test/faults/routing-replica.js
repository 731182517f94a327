// One gateway replica in a process of its own, for the tests that kill replicas (SIGKILL) and the
// Redis they share. argv: adapter ('Fastify' | 'Express'), then a JSON of the gateway options with
// `routingState.redisPort` standing for the client. Prints `listening <port>` once it serves, then
// one line per warning or notice the gateway logs.
import http from 'node:http'
import { tollgate as expressTollgate } from '@tollgate/express'
import fastifyTollgate from '@tollgate/fastify'
import express from 'express'
import Fastify from 'fastify'
import { Redis } from 'ioredis'

const [adapter, json] = process.argv.slice(2)
const options = JSON.parse(json)
const { redisPort, ...knobs } = options.routingState
const redis = new Redis({
  port: redisPort,
  host: '127.0.0.1',
  maxRetriesPerRequest: 1,
  retryStrategy: () => 50,
})
redis.on('error', () => {})
const logger = {
  warn: (message) => console.log(`warn ${message}`),
  info: (message) => console.log(`info ${message}`),
}
const gatewayOptions = { ...options, routingState: { redis, ...knobs }, logger }

let port
if (adapter === 'Fastify') {
  const app = Fastify()
  await app.register(fastifyTollgate, gatewayOptions)
  app.post('/v1/chat/completions', app.tollgate.forward())
  await app.listen({ port: 0, host: '127.0.0.1' })
  port = app.server.address().port
} else {
  const gate = expressTollgate(gatewayOptions)
  const app = express()
  app.post('/v1/chat/completions', gate.forward())
  const server = http.createServer(app)
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  port = server.address().port
}
console.log(`listening ${port}`)
