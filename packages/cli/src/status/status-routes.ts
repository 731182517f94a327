import type { FastifyInstance } from 'fastify'
import type { GatewayConfig } from '../config/types.js'
import { type GenerationInfo, type StatusDocument, statusDocument } from './status-document.js'
import { statusPage } from './status-page.js'
import type { StatusStats } from './status-stats.js'

export type { BackendStatusRow, GenerationInfo, RouteStatusRow, StatusDocument } from './status-document.js'

/** The status page at `status.path` and the JSON it polls at `status.path/status.json`. */
export function registerStatus(
  app: FastifyInstance,
  config: GatewayConfig,
  stats: StatusStats,
  generation: GenerationInfo,
  hasBackends: boolean,
): void {
  const status = config.status
  if (!status) return
  const jsonPath = `${status.path === '/' ? '' : status.path}/status.json`
  const html = statusPage(jsonPath, status.refreshMs)
  const noLimit = { config: { rateLimit: false as const }, logLevel: 'warn' as const }
  app.get(status.path, noLimit, async (_request, reply) =>
    reply.type('text/html; charset=utf-8').header('cache-control', 'no-store').send(html),
  )
  app.get(jsonPath, noLimit, async (_request, reply): Promise<StatusDocument> => {
    reply.header('cache-control', 'no-store')
    return statusDocument(config, stats, generation, hasBackends ? app.tollgate.backends : undefined)
  })
}
