import type { GatewayConfig } from './config/types.js'
import { LIVE_PATH, READY_PATH } from './probes.js'

function limitsOf(config: GatewayConfig, route: GatewayConfig['routes'][number]): string {
  const spec = route.rateLimit
  const defaults = config.plugin.defaultLimits
  const own =
    spec === undefined ? undefined : spec === false ? false : typeof spec === 'string' ? spec : spec.limits
  if (own === false) return 'no limits'
  if (own !== undefined) return `limits ${own}`
  return defaults === undefined ? 'no limits' : `limits ${defaults} (default)`
}

/** What `tollgate check` found in a good file, a line per part, for the operator to compare with the intent. */
export function checkSummary(file: string, config: GatewayConfig): string {
  const backends = config.plugin.backends ?? []
  const total = backends.length + config.dnsBackends.length
  const n = (count: number, word: string) => `${count} ${word}${count === 1 ? '' : 's'}`
  const lines = [`${file}: ok (${n(total, 'backend')}, ${n(config.routes.length, 'route')})`]
  lines.push(`  listen ${config.listen.host}:${config.listen.port}`)
  const named = [
    ...backends.map((b) => `${b.id ?? b.url}${b.zone ? ` (zone ${b.zone})` : ''}`),
    ...config.dnsBackends.map(({ entry }) => `${entry.dns}:${entry.port} (one backend per DNS address)`),
  ]
  if (named.length > 0) lines.push(`  backends: ${named.join(', ')}`)
  const strategy = config.plugin.strategy
  if (total > 0) lines.push(`  strategy: ${typeof strategy === 'string' ? strategy : 'round-robin'}`)
  for (const route of config.routes) {
    const what = route.models ? 'model list' : 'forward'
    lines.push(
      `  route ${[route.method].flat().join(',')} ${route.path} → ${what}, ${limitsOf(config, route)}`,
    )
  }
  if (config.plugin.applicationLimits !== undefined)
    lines.push(`  application limits: ${config.plugin.applicationLimits}`)
  lines.push(
    `  counters: ${config.redis ? 'Redis (shared by every replica)' : 'in this process (set redis to share them between replicas)'}`,
  )
  const pages = [`probes ${LIVE_PATH} ${READY_PATH}`]
  if (config.status) pages.unshift(`status page ${config.status.path}`)
  if (config.metrics) pages.unshift(`metrics ${config.metrics.path}`)
  lines.push(`  ${pages.join(', ')}`)
  return lines.join('\n')
}
