import type { BackendSnapshot, BackendsHandle, FairQueueSnapshot, ZoneSnapshot } from '@tollgate/core'
import type { GatewayConfig } from '../config/types.js'
import {
  type BackendStats,
  RATE_SLOTS,
  routeScope,
  SLOT_MS,
  SLOTS,
  type StatusStats,
} from './status-stats.js'

/** The config file's generations: how often it was reloaded, and when the one in force was loaded. */
export interface GenerationInfo {
  file: string
  loadedAt: number
  reloads: number
  /** The last reload that was refused (the old config kept), if any. */
  refusedAt: number | null
}

/** How a backend is doing, from the gateway's side: `down` takes nothing, `degraded` has trouble. */
export type BackendState = 'ok' | 'degraded' | 'down'

export interface BackendStatusRow {
  id: string
  url: string
  /** The balancer's view: healthy, draining, cooling-down, unhealthy or ejected. */
  status: string
  state: BackendState
  /** What is wrong, in words; empty when nothing is. */
  problems: string[]
  zone: string | null
  models: string[] | null
  inFlight: number
  maxConcurrency: number | null
  /** In flight over maxConcurrency, when the backend has one. */
  load: number | null
  latencyMs: number
  totalRequests: number
  totalErrors: number
  /** Attempts per second over the last 30 s: answered and failed. */
  rate: number
  errorRate: number
  /** Attempts and failed attempts per slot (`window.slotMs`), oldest first. */
  requests: number[]
  errors: number[]
  /** Time to the first streamed chunk over the chart's span, in ms; null without streams. */
  ttft: { p50: number; p90: number; samples: number } | null
  lastFailure: { at: number; reason: string } | null
  /** The server's own load report, when it has `metrics`. */
  report: {
    ageMs: number | null
    stale: boolean
    waiting: number | null
    running: number | null
    kvUsage: number | null
    failures: number
    lastError: string | null
  } | null
}

export interface RouteStatusRow {
  method: string
  path: string
  /** The limit string in force, `none` for routes without limits. */
  limits: string
  /** Requests per second over the last 30 s, and per slot. */
  rate: number
  requests: number[]
  /** 429s from request limits and from token budgets, since the gateway started. */
  limited: number
  tokenLimited: number
  limitedSeries: number[]
  /** Tokens charged to the route's budgets (0 without token budgets). */
  tokens: number
  /** Tokens charged in the last minute. */
  tokensLastMinute: number
  totalRequests: number
}

export interface StatusDocument {
  generatedAt: number
  window: { slotMs: number; slots: number }
  strategy: string
  /** Whether `fairness` is on: then `queue.tenants` lists tenants. */
  fairness: boolean
  generation: GenerationInfo
  /** Requests waiting for any backend to have room, and (with fairness) per tenant. */
  queue: FairQueueSnapshot | null
  /** Per zone, when any backend has one. */
  zones: ZoneSnapshot[] | null
  backends: BackendStatusRow[]
  applicationLimits: string | null
  routes: RouteStatusRow[]
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

const round2 = (x: number) => Math.round(x * 100) / 100

function backendRow(b: BackendSnapshot, stats: BackendStats | undefined, now: number): BackendStatusRow {
  const answeredRate = stats?.answered.perSecond(now, RATE_SLOTS) ?? 0
  const failedRate = stats?.failed.perSecond(now, RATE_SLOTS) ?? 0
  const failed = stats?.failed.sum(now, RATE_SLOTS) ?? 0
  const answered = stats?.answered.sum(now, RATE_SLOTS) ?? 0
  const ttft = stats?.ttftMs.quantiles(now - SLOT_MS * SLOTS, [0.5, 0.9]) ?? null
  const report = b.loadReport
  const problems: string[] = []
  const recentFailure = stats?.lastFailureAt != null && now - stats.lastFailureAt < RATE_SLOTS * SLOT_MS
  if (failed > 0 && answered === 0)
    problems.push(`requests failing (${failed} in 30 s): ${stats?.lastFailure ?? 'failed'}`)
  else if (failed > 0) problems.push(`${failed} of ${failed + answered} attempts failed in 30 s`)
  else if (recentFailure) problems.push(`last failure: ${stats?.lastFailure}`)
  if (report?.lastError) problems.push(`load report failing: ${report.lastError}`)
  else if (report?.stale && report.ageMs !== null) problems.push('load report stale')
  if (b.status === 'ejected' && b.ejectedUntil !== null)
    problems.push(`ejected for ${Math.max(0, Math.ceil((b.ejectedUntil - now) / 1000))} s more`)
  const down = b.status === 'ejected' || b.status === 'unhealthy' || (failed > 0 && answered === 0)
  const state: BackendState = down
    ? 'down'
    : problems.length > 0 || b.status !== 'healthy'
      ? 'degraded'
      : 'ok'
  const answeredSeries = stats?.answered.values(now) ?? new Array<number>(SLOTS).fill(0)
  const errors = stats?.failed.values(now) ?? new Array<number>(SLOTS).fill(0)
  return {
    id: b.id,
    url: withoutCredentials(b.url),
    status: b.status,
    state,
    problems,
    zone: b.zone,
    models: b.models,
    inFlight: b.inFlight,
    maxConcurrency: b.maxConcurrency,
    load: b.maxConcurrency ? b.inFlight / b.maxConcurrency : null,
    latencyMs: Math.round(b.latencyMs),
    totalRequests: b.totalRequests,
    totalErrors: b.totalErrors,
    rate: round2(answeredRate + failedRate),
    errorRate: round2(failedRate),
    requests: answeredSeries.map((n, i) => n + (errors[i] as number)),
    errors,
    ttft: ttft && {
      p50: Math.round(ttft.values[0] as number),
      p90: Math.round(ttft.values[1] as number),
      samples: ttft.samples,
    },
    lastFailure:
      stats?.lastFailureAt != null ? { at: stats.lastFailureAt, reason: stats.lastFailure ?? '' } : null,
    report: report && {
      ageMs: report.ageMs,
      stale: report.stale,
      waiting: report.waiting,
      running: report.running,
      kvUsage: report.kvUsage,
      failures: report.failures,
      lastError: report.lastError,
    },
  }
}

function limitsOf(config: GatewayConfig, spec: GatewayConfig['routes'][number]['rateLimit']): string {
  const defaults = config.plugin.defaultLimits ?? 'none'
  if (spec === undefined) return defaults
  if (spec === false) return 'none'
  return typeof spec === 'string' ? spec : (spec.limits ?? defaults)
}

function routeRows(config: GatewayConfig, stats: StatusStats, now: number): RouteStatusRow[] {
  return config.routes.map((route) => {
    const s = stats.route(routeScope(route.method, route.path))
    const requests = s?.requests.values(now) ?? []
    const limited = s?.limited.values(now) ?? []
    const tokenLimited = s?.tokenLimited.values(now) ?? []
    return {
      method: [route.method].flat().join(', '),
      path: route.path,
      limits: limitsOf(config, route.rateLimit),
      rate: round2(s?.requests.perSecond(now, RATE_SLOTS) ?? 0),
      requests,
      limited: s?.totalLimited ?? 0,
      tokenLimited: s?.totalTokenLimited ?? 0,
      limitedSeries: limited.map((n, i) => n + (tokenLimited[i] ?? 0)),
      tokens: s?.totalTokens ?? 0,
      tokensLastMinute: s?.tokens.sum(now, 60_000 / SLOT_MS) ?? 0,
      totalRequests: s?.totalRequests ?? 0,
    }
  })
}

/** The JSON the status page polls: everything it shows, computed at the time of asking. */
export function statusDocument(
  config: GatewayConfig,
  stats: StatusStats,
  generation: GenerationInfo,
  backends: BackendsHandle | undefined,
): StatusDocument {
  const now = stats.now()
  const snapshot = backends?.snapshot() ?? []
  stats.keepBackends(new Set(snapshot.map((b) => b.id)))
  const zones = backends?.zones() ?? []
  const strategy = config.plugin.strategy
  return {
    generatedAt: now,
    window: { slotMs: SLOT_MS, slots: SLOTS },
    strategy: typeof strategy === 'string' ? strategy : 'round-robin',
    fairness: config.plugin.fairness !== undefined,
    generation: { ...generation },
    queue: backends?.queue() ?? null,
    zones: zones.some((z) => z.zone !== null) ? zones : null,
    backends: snapshot.map((b) => backendRow(b, stats.backend(b.id), now)),
    applicationLimits: config.plugin.applicationLimits ?? null,
    routes: routeRows(config, stats, now),
  }
}
