/**
 * The gateway of the routing benchmark, one per process:
 *   node bench/routing-gateway.js '<JSON of @tollgate/fastify options>'
 * Prints {"port":N} once listening; `GET /backends` answers the backend snapshot, `GET /kv-events`
 * the KV-event feeds and precise-prefix counts (null under another strategy).
 */

import tollgate from '@tollgate/fastify'
import Fastify from 'fastify'

const options = JSON.parse(process.argv[2] ?? '{}')
const app = Fastify({ logger: false, bodyLimit: 16 * 1024 * 1024 })
await app.register(tollgate, options)
app.post('/v1/chat/completions', app.tollgate.forward())
app.get('/backends', { config: { rateLimit: false } }, () => app.tollgate.backends.snapshot())
app.get('/kv-events', { config: { rateLimit: false } }, () => app.tollgate.backends.kvEvents())
await app.listen({ port: 0, host: '127.0.0.1' })
const address = /** @type {import('node:net').AddressInfo} */ (app.server.address())
console.log(JSON.stringify({ port: address.port }))
const stop = () => void app.close().then(() => process.exit(0))
process.once('SIGINT', stop)
process.once('SIGTERM', stop)
