// An Express gateway in front of OpenAI-compatible model servers.
// Run: npm run build && BACKENDS=http://127.0.0.1:8001,http://127.0.0.1:8002 node examples/express-gateway.js
import { expressServer, tollgate } from '@tollgate/express'
import express from 'express'

export function buildGateway({ backends, strategy = 'round-robin', store } = {}) {
  const gate = tollgate({ defaultLimits: '200 per day, 50 per hour', store, backends, strategy })
  const app = express()

  app.post('/v1/chat/completions', gate.limit('5 per second'), gate.forward())
  app.post('/v1/completions', gate.limit(), gate.forward())
  app.get('/v1/models', gate.listModels())
  app.get('/gateway/backends', (_req, res) => res.json(gate.backends.snapshot()))
  return { app, gate }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const backends = (process.env.BACKENDS ?? '')
    .split(',')
    .filter(Boolean)
    .map((url) => ({ url }))
  if (backends.length === 0) {
    console.error('set BACKENDS to a comma-separated list of model server URLs')
    process.exit(1)
  }
  const { app, gate } = buildGateway({ backends })
  // expressServer(app) rather than app.listen(): see the README's Express section.
  const server = expressServer(app).listen(Number(process.env.PORT ?? 3001), '127.0.0.1', () => {
    console.log(`gateway on http://127.0.0.1:${server.address().port}`)
  })
  // Both at once: the server stops accepting and waits for open connections, while gate.close()
  // lets in-flight streams finish up to its shutdown deadline and then cuts them.
  const stop = () => {
    const serverClosed = new Promise((resolve) => server.close(resolve))
    Promise.all([serverClosed, gate.close()]).then(() => process.exit(0))
  }
  process.once('SIGINT', stop)
  process.once('SIGTERM', stop)
}
