/**
 * One gateway replica of the replicas benchmark:
 *   node bench/replica-gateway.js '<JSON of @tollgate/fastify options>'
 * `routingState: { url, … }` in the JSON stands for a Redis client on that URL. Prints {"port":N}
 * once listening.
 */
import tollgate from '@tollgate/fastify'
import Fastify from 'fastify'
import { Redis } from 'ioredis'

const options = JSON.parse(process.argv[2] ?? '{}')
let redis
if (options.routingState) {
  const { url, ...knobs } = options.routingState
  redis = new Redis(url, { maxRetriesPerRequest: 1 })
  redis.on('error', () => {})
  options.routingState = { redis, ...knobs }
}
const app = Fastify({ logger: false, bodyLimit: 16 * 1024 * 1024 })
await app.register(tollgate, options)
app.post('/v1/chat/completions', app.tollgate.forward())
await app.listen({ port: 0, host: '127.0.0.1' })
const address = /** @type {import('node:net').AddressInfo} */ (app.server.address())
console.log(JSON.stringify({ port: address.port }))
const stop = () =>
  void app.close().then(() => {
    redis?.disconnect()
    process.exit(0)
  })
process.once('SIGINT', stop)
process.once('SIGTERM', stop)
