import { createHash } from 'node:crypto'
import { type FSWatcher, readFileSync, watch } from 'node:fs'
import { basename, dirname } from 'node:path'
import type { DnsResolverLike } from '@tollgate/core'
import type { FastifyBaseLogger } from 'fastify'
import { pino } from 'pino'
import { checkAll, warningsOf } from './config/check-all.js'
import { ConfigError } from './config/config-error.js'
import { loadConfig } from './config/load-config.js'
import { pluginProblem } from './config/plugin-errors.js'
import type { ConfigSource } from './config/source.js'
import type { GatewayConfig } from './config/types.js'
import { buildGatewayApp, type GatewayAppOptions, RouteError } from './gateway-app.js'
import { redisProblem } from './redis-problem.js'
import { GenerationServer } from './server/generations.js'
import { createRoutingClient, createSharedStore, reachRedisOnce, type SharedStore } from './shared-store.js'
import { startupSummary } from './startup-summary.js'
import type { GenerationInfo } from './status/status-document.js'
import { StatusStats } from './status/status-stats.js'

export interface ServeOptions {
  configFile: string
  /** Overrides `listen.port`. */
  port?: number
  env?: NodeJS.ProcessEnv
  /** Default: a pino logger on stdout at `info`. */
  logger?: FastifyBaseLogger
  /** Reload when the file (or its directory, for Kubernetes ConfigMaps) changes. Default true. */
  watch?: boolean
  /** Resolves the `dns` backend entries; default the system's resolver. */
  dnsResolver?: DnsResolverLike
}

export interface RunningGateway {
  /** `http://host:port` the gateway listens on. */
  readonly url: string
  readonly ready: boolean
  /** Loads the file again; resolves false (old config kept, error logged) when it is refused. */
  reload(): Promise<boolean>
  /** Stops taking connections, finishes requests in flight, closes everything; `reason` (a signal) is logged. */
  close(reason?: string): Promise<void>
}

const DEFAULT_SHUTDOWN_MS = 10_000

function asConfigError(error: unknown, config: GatewayConfig, source: ConfigSource): Error {
  if (error instanceof ConfigError) return error
  if (error instanceof RouteError) return pluginProblem(error.cause, config, source, error.routeIndex)
  if (error instanceof TypeError || (error instanceof Error && /^tollgate: /.test(error.message))) {
    return pluginProblem(error, config, source)
  }
  return error as Error
}

/** Builds the app for a loaded config, turning the plugin's option errors into file positions. */
async function buildFor(
  config: GatewayConfig,
  source: ConfigSource,
  store: SharedStore,
  options: Omit<GatewayAppOptions, 'store'>,
) {
  try {
    return await buildGatewayApp(config, { ...options, store: store.option })
  } catch (error) {
    throw asConfigError(error, config, source)
  }
}

/** `tollgate check`: everything `serve` would refuse, without listening or connecting to Redis. */
export async function checkConfigFile(
  file: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<GatewayConfig> {
  const { config, problems } = await checkAll(file, env)
  if (problems.length > 0) throw new ConfigError(problems)
  return config
}

/**
 * The error to report for a file that failed to load or build: a ConfigError names only the
 * first of the plugin's problems, so the whole file is checked again for all of them.
 */
async function everyProblem(error: unknown, file: string, env: NodeJS.ProcessEnv): Promise<unknown> {
  if (!(error instanceof ConfigError)) return error
  try {
    const { problems } = await checkAll(file, env)
    return problems.length > 0 ? new ConfigError(problems) : error
  } catch {
    return error
  }
}

/** `tollgate serve`: listens, reloads on SIGHUP-driven `reload()` or file change, closes cleanly. */
export async function serve(options: ServeOptions): Promise<RunningGateway> {
  const env = options.env ?? process.env
  const logger = options.logger ?? pino({ level: env.LOG_LEVEL ?? 'info' })
  let loaded: ReturnType<typeof loadConfig>
  try {
    loaded = loadConfig(options.configFile, env)
  } catch (error) {
    throw await everyProblem(error, options.configFile, env)
  }
  let { config, source } = loaded
  const store = createSharedStore(config.redis)
  const routingClient = config.routingState && createRoutingClient(config.routingState.url)
  const { url: _url, ...routingKnobs } = config.routingState ?? { url: '' }
  const routingState = routingClient && { redis: routingClient, ...routingKnobs }
  const closeClients = async () => {
    await store.close()
    routingClient?.disconnect()
  }
  let closing = false
  let redisReached = config.redis === undefined
  let redisProblemNow = 'not reached yet'
  const failing = (): string[] => {
    const checks: string[] = []
    if (!redisReached) checks.push(`redis: ${redisProblemNow}`)
    if (closing) checks.push('shutting down')
    return checks
  }
  const generations = new GenerationServer()
  const generation: GenerationInfo = {
    file: basename(options.configFile),
    loadedAt: Date.now(),
    reloads: 0,
    refusedAt: null,
  }
  const appOptions = {
    logger,
    failing,
    dnsResolver: options.dnsResolver,
    routingState,
    status: { stats: new StatusStats(), generation },
  }
  let fileHash = hashOf(options.configFile)

  try {
    const first = await buildFor(config, source, store, appOptions)
    await generations.swap(first.app, first.handler, config.plugin.shutdownTimeoutMs ?? DEFAULT_SHUTDOWN_MS)
  } catch (error) {
    await closeClients()
    throw await everyProblem(error, options.configFile, env)
  }
  for (const warning of warningsOf(config, source)) logger.warn(`tollgate: ${warning}`)
  if (store.redis) {
    let warned = false
    // A refused connection reaches the client's error event; the PING itself only sees "Connection is closed".
    let socketError: unknown
    const noteError = (error: unknown) => {
      socketError = error
    }
    store.redis.on('error', noteError)
    const failed = (error: unknown) => {
      const problem = redisProblem(socketError ?? error)
      socketError = undefined
      if (!warned || problem !== redisProblemNow)
        logger.warn(
          `tollgate: Redis unreachable (${problem}); /readyz answers 503 until it answers, and limits are counted in this process meanwhile (redis.onError)`,
        )
      warned = true
      redisProblemNow = problem
    }
    const client = store.redis
    void reachRedisOnce(client, () => closing, 1000, failed).then((reached) => {
      client.off('error', noteError)
      redisReached = reached
      if (reached) logger.info('tollgate: Redis reached; ready')
    })
  }

  const port = options.port ?? config.listen.port
  try {
    await new Promise<void>((resolve, reject) => {
      generations.server.once('error', reject)
      generations.server.listen(port, config.listen.host, () => {
        generations.server.off('error', reject)
        resolve()
      })
    })
  } catch (error) {
    // A port in use must end the command, not leave an app and a Redis client holding it open.
    closing = true
    await generations.close()
    await closeClients()
    throw error
  }
  const address = generations.server.address()
  const boundPort = typeof address === 'object' && address ? address.port : port
  const host = config.listen.host.includes(':') ? `[${config.listen.host}]` : config.listen.host
  const url = `http://${host}:${boundPort}`
  logger.info(startupSummary(url, options.configFile, config))

  let reloading: Promise<boolean> = Promise.resolve(true)
  const reloadOnce = async (): Promise<boolean> => {
    if (closing) return false
    try {
      const next = loadConfig(options.configFile, env)
      const restartOnly = changedRestartKeys(config, next.config)
      if (restartOnly.length > 0) {
        throw new ConfigError([
          `${restartOnly.join(' and ')} changed; that takes a restart, so the running config stays`,
        ])
      }
      const built = await buildFor(next.config, next.source, store, appOptions)
      const drainMs = config.plugin.shutdownTimeoutMs ?? DEFAULT_SHUTDOWN_MS
      config = next.config
      source = next.source
      void generations.swap(built.app, built.handler, drainMs)
      generation.reloads++
      generation.loadedAt = Date.now()
      logger.info(`tollgate: reloaded ${options.configFile}`)
      return true
    } catch (caught) {
      generation.refusedAt = Date.now()
      const error = await everyProblem(caught, options.configFile, env)
      const text = error instanceof ConfigError ? error.problems.join('; ') : (error as Error).message
      logger.error(`tollgate: refused the new config, the running one stays: ${text}`)
      return false
    } finally {
      fileHash = hashOf(options.configFile)
    }
  }
  const reload = () => {
    reloading = reloading.then(reloadOnce)
    return reloading
  }

  let watcher: FSWatcher | undefined
  let debounce: NodeJS.Timeout | undefined
  if (options.watch ?? true) {
    // The directory, not the file: editors and Kubernetes ConfigMaps replace the file (rename,
    // symlink swap), which ends a watch on the file itself.
    watcher = watch(dirname(options.configFile), () => {
      clearTimeout(debounce)
      debounce = setTimeout(() => {
        if (hashOf(options.configFile) !== fileHash) void reload()
      }, 150)
      debounce.unref()
    })
    watcher.unref()
  }

  let closed: Promise<void> | undefined
  return {
    url,
    get ready() {
      return failing().length === 0
    },
    reload,
    close(reason) {
      closed ??= (async () => {
        closing = true
        const drainMs = config.plugin.shutdownTimeoutMs ?? DEFAULT_SHUTDOWN_MS
        if (reason !== undefined)
          logger.info(
            `tollgate: ${reason}: draining; no new connections, ${plural(generations.inFlight, 'request')} in flight get up to ${drainMs / 1000} s`,
          )
        watcher?.close()
        clearTimeout(debounce)
        await reloading
        await generations.close()
        await closeClients()
        if (reason !== undefined) logger.info('tollgate: stopped; exiting')
      })()
      return closed
    },
  }
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`
}

function hashOf(file: string): string {
  try {
    return createHash('sha256').update(readFileSync(file)).digest('hex')
  } catch {
    return ''
  }
}

function changedRestartKeys(running: GatewayConfig, next: GatewayConfig): string[] {
  const changed: string[] = []
  if (JSON.stringify(running.listen) !== JSON.stringify(next.listen)) changed.push('"listen"')
  if (JSON.stringify(running.redis) !== JSON.stringify(next.redis)) changed.push('"redis"')
  if (JSON.stringify(running.routingState) !== JSON.stringify(next.routingState))
    changed.push('"routingState"')
  return changed
}
