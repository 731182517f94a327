/**
 * One forwarding gateway per process (so its CPU time is its own):
 *   node bench/servers/forward-server.js <variant> <backend URLs, comma-separated> [strategy] [hash header]
 * The hash header is the consistent-hash key (tollgate's `hashKey` option).
 * Variants: tollgate-fastify, tollgate-express (served by expressServer), tollgate-express-listen
 * (served as app.listen() would), reply-from, http-proxy, http-proxy-middleware.
 * Prints {"port":N} once listening, or {"skip":"why"} when the tollgate build has no forward() yet.
 */
import { createServer } from 'node:http'

const [variant = '', backendList = '', strategy = 'round-robin', hashHeader = ''] = process.argv.slice(2)
const urls = backendList.split(',').filter(Boolean)
const backends = urls.map((url, i) => ({ url, id: `b${i}` }))
/** @type {Array<() => Promise<unknown>>} */
const closers = []

class Skip extends Error {}

function describe(/** @type {unknown} */ err) {
  return err instanceof Error ? err.message.split('\n')[0] : String(err)
}

async function fastifyGateway() {
  const { default: Fastify } = await import('fastify')
  const app = Fastify({ logger: false, bodyLimit: 16 * 1024 * 1024 })
  closers.unshift(() => app.close())
  if (variant === 'tollgate-fastify') {
    const { default: tollgate } = await import('@tollgate/fastify')
    try {
      await app.register(tollgate, { backends, strategy, ...(hashHeader ? { hashKey: hashHeader } : {}) })
    } catch (err) {
      throw new Skip(`@tollgate/fastify does not accept { backends, strategy } yet: ${describe(err)}`)
    }
    const gate = /** @type {any} */ (app).tollgate
    if (typeof gate?.forward !== 'function') throw new Skip('app.tollgate.forward is not a function yet')
    app.post('/v1/chat/completions', gate.forward())
  } else if (variant === 'reply-from') {
    const { default: replyFrom } = await import('@fastify/reply-from')
    await app.register(replyFrom, { base: urls[0] })
    app.post('/v1/chat/completions', (request, reply) => reply.from(request.url))
  } else if (variant === 'http-proxy') {
    const { default: proxy } = await import('@fastify/http-proxy')
    await app.register(proxy, {
      upstream: /** @type {string} */ (urls[0]),
      prefix: '/v1',
      rewritePrefix: '/v1',
    })
  } else {
    throw new Error(`unknown variant ${variant}`)
  }
  await app.listen({ port: 0, host: '127.0.0.1' })
  return /** @type {import('node:net').AddressInfo} */ (app.server.address()).port
}

async function expressGateway() {
  const { default: express } = await import('express')
  const app = express()
  if (variant === 'tollgate-express' || variant === 'tollgate-express-listen') {
    const { tollgate } = await import('@tollgate/express')
    /** @type {any} */
    let gate
    try {
      gate = /** @type {any} */ (tollgate)({
        backends,
        strategy,
        ...(hashHeader ? { hashKey: hashHeader } : {}),
      })
    } catch (err) {
      throw new Skip(`@tollgate/express does not accept { backends, strategy } yet: ${describe(err)}`)
    }
    closers.push(() => gate.close())
    if (typeof gate.forward !== 'function') throw new Skip('gate.forward is not a function yet')
    app.post('/v1/chat/completions', gate.forward())
  } else if (variant === 'http-proxy-middleware') {
    const { createProxyMiddleware } = await import('http-proxy-middleware')
    const { Agent } = await import('node:http')
    // Without an agent, http-proxy opens a new upstream connection per request and sends
    // `Connection: close`, which then closes the client's connection too; every guide for it says
    // to pass a keep-alive agent, so the comparison does.
    const agent = new Agent({ keepAlive: true, maxSockets: 256 })
    closers.push(async () => agent.destroy())
    app.use(createProxyMiddleware({ target: urls[0], pathFilter: '/v1', agent }))
  } else {
    throw new Error(`unknown variant ${variant}`)
  }
  // tollgate-express serves through expressServer(app), as the README says to; the others through
  // a plain http.createServer(app), which is what app.listen() does.
  const server =
    variant === 'tollgate-express'
      ? (await import('@tollgate/express')).expressServer(app)
      : createServer(app)
  closers.unshift(
    () =>
      new Promise((resolve) => {
        server.closeAllConnections()
        server.close(resolve)
      }),
  )
  await new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(undefined)))
  return /** @type {import('node:net').AddressInfo} */ (server.address()).port
}

async function shutdown() {
  for (const close of closers) await close().catch(() => {})
  process.exit(0)
}
process.once('SIGTERM', shutdown)
process.once('SIGINT', shutdown)

try {
  const express = variant.startsWith('tollgate-express') || variant === 'http-proxy-middleware'
  const port = express ? await expressGateway() : await fastifyGateway()
  console.log(JSON.stringify({ port }))
} catch (err) {
  if (err instanceof Skip) {
    console.log(JSON.stringify({ skip: err.message }))
    // Stay up until stopped, like a ready server would, so the parent's bookkeeping stays simple.
    setInterval(() => {}, 60_000)
  } else {
    console.error(err instanceof Error ? (err.stack ?? err.message) : err)
    process.exit(1)
  }
}
