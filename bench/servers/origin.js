/**
 * The origin behind the forwarding benchmark: an OpenAI-shaped answer with as little work as
 * possible, because it shares the load core with wrk and must not be what limits a fast proxy.
 * (The balancing benchmark uses examples/fake-model-server.js, which models a GPU server instead.)
 *
 * POST /v1/chat/completions: a fixed JSON completion, or with `"stream":true` in the body an SSE
 * stream of `--chunks` token events `--interval` ms apart, then `data: [DONE]`.
 * `node bench/servers/origin.js --chunks 16 --interval 2`; prints {"port":N}.
 */
import { createServer } from 'node:http'
import { parseArgs } from 'node:util'

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    chunks: { type: 'string', default: '16' },
    interval: { type: 'string', default: '2' },
  },
})
const chunks = Number(values.chunks)
const interval = Number(values.interval)

const completion = Buffer.from(
  JSON.stringify({
    id: 'chatcmpl-origin',
    object: 'chat.completion',
    created: 1_700_000_000,
    model: 'fake-model',
    choices: [
      {
        index: 0,
        message: { role: 'assistant', content: 'The gate answers every request in the order it came.' },
        finish_reason: 'stop',
      },
    ],
    usage: { prompt_tokens: 12, completion_tokens: 11, total_tokens: 23 },
  }),
)
const event = (/** @type {string} */ content) =>
  Buffer.from(
    `data: ${JSON.stringify({
      id: 'chatcmpl-origin',
      object: 'chat.completion.chunk',
      created: 1_700_000_000,
      model: 'fake-model',
      choices: [{ index: 0, delta: { content }, finish_reason: null }],
    })}\n\n`,
  )
const tokenEvent = event(' token')
const done = Buffer.from('data: [DONE]\n\n')
const STREAM_FLAG = Buffer.from('"stream":true')

const server = createServer({ noDelay: true, keepAliveTimeout: 60_000 }, (req, res) => {
  /** @type {Buffer[]} */
  const parts = []
  req.on('data', (d) => parts.push(d))
  req.on('end', () => {
    const body = parts.length === 1 ? /** @type {Buffer} */ (parts[0]) : Buffer.concat(parts)
    if (!body.includes(STREAM_FLAG)) {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': completion.length })
      res.end(completion)
      return
    }
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' })
    let sent = 0
    const tick = () => {
      if (res.destroyed) return
      if (sent++ < chunks) {
        res.write(tokenEvent)
        setTimeout(tick, interval)
      } else {
        res.end(done)
      }
    }
    tick()
  })
})
server.keepAliveTimeout = 60_000
server.listen(Number(values.port), '127.0.0.1', () => {
  const address = /** @type {import('node:net').AddressInfo} */ (server.address())
  console.log(JSON.stringify({ port: address.port }))
})
const stop = () => {
  server.closeAllConnections()
  server.close(() => process.exit(0))
}
process.once('SIGTERM', stop)
process.once('SIGINT', stop)
