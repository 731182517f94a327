import { buildGatewayApp, RouteError } from '../gateway-app.js'
import { createSharedStore } from '../shared-store.js'
import { readConfig, toGatewayConfig } from './load-config.js'
import { pluginFinding } from './plugin-errors.js'
import type { Finding } from './schema-errors.js'
import type { ConfigSource } from './source.js'
import type { GatewayConfig } from './types.js'

export interface CheckResult {
  /** The file's config with every part that has a problem left out. */
  config: GatewayConfig
  /** Every problem, `file:line:col: …`, in the order found: the file's shape first, then the plugin's rules. */
  problems: string[]
  /** What runs but is probably not meant (a file that serves nothing). */
  warnings: string[]
}

// Each round of the plugin check finds one problem; a file with more than this many is hopeless.
const MAX_ROUNDS = 50

/** The file's value without the parts the schema refused, and each kept route's index in the file. */
function pruned(raw: Record<string, unknown>, findings: readonly Finding[]) {
  const value: Record<string, unknown> = { ...raw }
  const badRoutes = new Set<number>()
  const badBackends = new Set<number>()
  for (const { path } of findings) {
    const [key, index] = path
    if (key === undefined || typeof key !== 'string') continue
    if (key === 'routes' && typeof index === 'number') badRoutes.add(index)
    else if (key === 'backends' && typeof index === 'number') badBackends.add(index)
    else delete value[key]
  }
  const routeIndex: number[] = []
  if (Array.isArray(value.routes)) {
    value.routes = value.routes.filter((_, i) => {
      if (badRoutes.has(i)) return false
      routeIndex.push(i)
      return true
    })
  }
  // Left as holes, so the backends after a bad one keep their positions in the file.
  if (Array.isArray(value.backends))
    value.backends = value.backends.map((b, i) => (badBackends.has(i) ? undefined : b))
  return { value, routeIndex }
}

/** Leaves out the part of `config` one plugin error was about; false when it names no part. */
function leaveOut(config: GatewayConfig, routeIndex: number[], error: unknown, finding: Finding): boolean {
  if (error instanceof RouteError) {
    config.routes.splice(error.routeIndex, 1)
    routeIndex.splice(error.routeIndex, 1)
    return true
  }
  const [key, index] = finding.path
  const plugin = config.plugin as Record<string, unknown>
  if (key === 'backends' && typeof index === 'number') {
    const at = config.staticBackendIndex.indexOf(index)
    if (at < 0) return false
    config.plugin.backends?.splice(at, 1)
    config.staticBackendIndex.splice(at, 1)
    return true
  }
  if (typeof key !== 'string' || !(key in plugin)) return false
  // Without any backends every forward route would fail as well: keep an empty list instead.
  if (key === 'backends') plugin.backends = []
  else delete plugin[key]
  return true
}

function isOptionError(error: unknown): boolean {
  return (
    error instanceof RouteError ||
    error instanceof TypeError ||
    (error instanceof Error && /^tollgate: /.test(error.message))
  )
}

/** Warnings about a file that runs: one that serves nothing is valid YAML but surely a mistake. */
export function warningsOf(config: GatewayConfig, source: ConfigSource): string[] {
  if (config.routes.length > 0) return []
  const backends = (config.plugin.backends?.length ?? 0) + config.dnsBackends.length
  const found = backends > 0 ? `${backends} backend${backends === 1 ? '' : 's'} but no routes` : 'no routes'
  return [
    source.atPath(
      ['routes'],
      `serves nothing: ${found}, so every request gets 404; add e.g. routes: [{ method: POST, path: /v1/chat/completions, forward: true }]`,
    ),
  ]
}

/**
 * Every problem of a gateway file in one pass: the schema's, then the plugin's own option rules,
 * which the plugin reports one at a time, so each round leaves out the part the last error was
 * about and builds again (without listening, resolving DNS or connecting to Redis).
 */
export async function checkAll(file: string, env: NodeJS.ProcessEnv = process.env): Promise<CheckResult> {
  const { source, raw, findings } = readConfig(file, env)
  const problems = [...new Set(findings.map((f) => f.text))]
  const { value, routeIndex } = pruned(raw, findings)
  const config = toGatewayConfig(value)
  const store = createSharedStore(undefined)
  try {
    for (let round = 0; round < MAX_ROUNDS; round++) {
      try {
        const built = await buildGatewayApp(
          { ...config, routes: [...config.routes], dnsBackends: [] },
          { store: store.option, logger: false, failing: () => [] },
        )
        await built.app.close()
        break
      } catch (error) {
        if (!isOptionError(error)) throw error
        const inFile = error instanceof RouteError ? routeIndex[error.routeIndex] : undefined
        const finding = pluginFinding(
          error instanceof RouteError ? error.cause : error,
          config,
          source,
          inFile,
        )
        if (!problems.includes(finding.text)) problems.push(finding.text)
        if (!leaveOut(config, routeIndex, error, finding)) break
      }
    }
  } finally {
    await store.close()
  }
  return { config, problems, warnings: problems.length > 0 ? [] : warningsOf(config, source) }
}
