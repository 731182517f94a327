import type { GatewayConfig } from './config/types.js'
import { LIVE_PATH, READY_PATH } from './probes.js'

/**
 * The line a started gateway logs: where it listens, what it serves, and where to look (status
 * page, metrics, probes), so an operator reading the pod's log knows the URLs to open.
 */
export function startupSummary(url: string, file: string, config: GatewayConfig): string {
  const routes = config.routes.map((r) => `${[r.method].flat().join(',')} ${r.path}`)
  const backends = (config.plugin.backends?.length ?? 0) + config.dnsBackends.length
  const parts = [
    `tollgate: listening on ${url} with ${file}`,
    `${routes.length} route${routes.length === 1 ? '' : 's'}${routes.length > 0 ? ` (${routes.join(', ')})` : ''}`,
    `${backends} backend${backends === 1 ? '' : 's'}${config.dnsBackends.length > 0 ? ' (DNS names count once)' : ''}`,
  ]
  if (config.status) parts.push(`status page ${url}${config.status.path}`)
  if (config.metrics) parts.push(`metrics ${url}${config.metrics.path}`)
  parts.push(`probes ${url}${LIVE_PATH} ${url}${READY_PATH}`)
  return parts.join('; ')
}
