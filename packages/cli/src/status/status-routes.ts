import type { BackendSnapshot } from '@tollgate/core'
import type { FastifyInstance } from 'fastify'
import type { GatewayConfig } from '../config/types.js'
import { statusPage } from './status-page.js'

export interface BackendStatusRow {
  id: string
  url: string
  status: string
  zone: string | null
  models: string[] | null
  inFlight: number
  queued: number
  maxConcurrency: number | null
  /** In flight over maxConcurrency, when the backend has one. */
  load: number | null
  latencyMs: number
  totalRequests: number
  totalErrors: number
  /** When the backend last reported its own load, if it reports one (epoch ms). */
  lastReportAt: number | null
}

export interface RouteLimitRow {
  method: string
  path: string
  /** The limit string in force, `none` for routes without limits. */
  limits: string
}

export interface StatusDocument {
  generatedAt: number
  backends: BackendStatusRow[]
  applicationLimits: string | null
  routes: RouteLimitRow[]
}

function withoutCredentials(url: string): string {
  try {
    const parsed = new URL(url)
    parsed.username = ''
    parsed.password = ''
    return parsed.href
  } catch {
    return url
  }
}

function backendRow(b: BackendSnapshot): BackendStatusRow {
  const reported = (b as { lastReportAt?: unknown }).lastReportAt
  return {
    id: b.id,
    url: withoutCredentials(b.url),
    status: b.status,
    zone: b.zone,
    models: b.models,
    inFlight: b.inFlight,
    queued: b.queued,
    maxConcurrency: b.maxConcurrency,
    load: b.maxConcurrency ? b.inFlight / b.maxConcurrency : null,
    latencyMs: Math.round(b.latencyMs),
    totalRequests: b.totalRequests,
    totalErrors: b.totalErrors,
    lastReportAt: typeof reported === 'number' ? reported : null,
  }
}

function routeRows(config: GatewayConfig): RouteLimitRow[] {
  const defaults = config.plugin.defaultLimits ?? 'none'
  return config.routes.map((route) => {
    const spec = route.rateLimit
    const limits =
      spec === undefined
        ? defaults
        : spec === false
          ? 'none'
          : typeof spec === 'string'
            ? spec
            : (spec.limits ?? defaults)
    return { method: [route.method].flat().join(', '), path: route.path, limits }
  })
}

/** The status page at `status.path` and the JSON it polls at `status.path/status.json`. */
export function registerStatus(app: FastifyInstance, config: GatewayConfig, hasBackends: boolean): void {
  const status = config.status
  if (!status) return
  const jsonPath = `${status.path === '/' ? '' : status.path}/status.json`
  const html = statusPage(jsonPath, status.refreshMs)
  const routes = routeRows(config)
  const applicationLimits = config.plugin.applicationLimits ?? null
  const noLimit = { config: { rateLimit: false as const }, logLevel: 'warn' as const }
  app.get(status.path, noLimit, async (_request, reply) =>
    reply.type('text/html; charset=utf-8').header('cache-control', 'no-store').send(html),
  )
  app.get(jsonPath, noLimit, async (_request, reply): Promise<StatusDocument> => {
    reply.header('cache-control', 'no-store')
    const backends = hasBackends ? app.tollgate.backends.snapshot().map(backendRow) : []
    return { generatedAt: Date.now(), backends, applicationLimits, routes }
  })
}
