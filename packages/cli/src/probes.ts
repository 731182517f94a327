import type { FastifyInstance } from 'fastify'

export const LIVE_PATH = '/livez'
export const READY_PATH = '/readyz'

/**
 * Kubernetes probes. Live: the process answers HTTP. Ready: the config is loaded, Redis (when
 * configured) was reached once, and the gateway is not shutting down, so a terminating pod
 * leaves the Service's endpoints before its connections are closed. A 503 names each failing
 * check (`redis: connection refused 127.0.0.1:6379`): a pod that never gets traffic says why.
 */
export function registerProbes(app: FastifyInstance, failing: () => string[]): void {
  const noLimit = { config: { rateLimit: false as const }, logLevel: 'warn' as const }
  app.get(LIVE_PATH, noLimit, async () => ({ status: 'live' }))
  app.get(READY_PATH, noLimit, async (_request, reply) => {
    const checks = failing()
    if (checks.length === 0) return { status: 'ready' }
    return reply.code(503).send({ status: 'not ready', failing: checks })
  })
}
