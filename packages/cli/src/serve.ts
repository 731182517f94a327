import { createHash } from 'node:crypto'
import { type FSWatcher, readFileSync, watch } from 'node:fs'
import { dirname } from 'node:path'
import type { DnsResolverLike } from '@tollgate/core'
import type { FastifyBaseLogger } from 'fastify'
import { pino } from 'pino'
import { ConfigError } from './config/config-error.js'
import { loadConfig } from './config/load-config.js'
import { pluginProblem } from './config/plugin-errors.js'
import type { ConfigSource } from './config/source.js'
import type { GatewayConfig } from './config/types.js'
import { buildGatewayApp, type GatewayAppOptions, RouteError } from './gateway-app.js'
import { GenerationServer } from './server/generations.js'
import { createRoutingClient, createSharedStore, reachRedisOnce, type SharedStore } from './shared-store.js'

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
  /** Stops taking connections, finishes requests in flight, closes everything. */
  close(): Promise<void>
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
  const { config, source } = loadConfig(file, env)
  const store = createSharedStore(undefined)
  try {
    const built = await buildFor({ ...config, dnsBackends: [] }, source, store, {
      logger: false,
      ready: () => false,
    })
    await built.app.close()
  } finally {
    await store.close()
  }
  return config
}

/** `tollgate serve`: listens, reloads on SIGHUP-driven `reload()` or file change, closes cleanly. */
export async function serve(options: ServeOptions): Promise<RunningGateway> {
  const env = options.env ?? process.env
  const logger = options.logger ?? pino({ level: env.LOG_LEVEL ?? 'info' })
  let { config, source } = loadConfig(options.configFile, env)
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
  const ready = () => redisReached && !closing
  const generations = new GenerationServer()
  const appOptions = { logger, ready, dnsResolver: options.dnsResolver, routingState }
  let fileHash = hashOf(options.configFile)

  try {
    const first = await buildFor(config, source, store, appOptions)
    await generations.swap(first.app, first.handler, config.plugin.shutdownTimeoutMs ?? DEFAULT_SHUTDOWN_MS)
  } catch (error) {
    await closeClients()
    throw error
  }
  if (store.redis) {
    void reachRedisOnce(store.redis, () => closing).then((reached) => {
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
  logger.info(`tollgate: listening on ${url} with ${options.configFile}`)

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
      logger.info(`tollgate: reloaded ${options.configFile}`)
      return true
    } catch (error) {
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
      return ready()
    },
    reload,
    close() {
      closed ??= (async () => {
        closing = true
        watcher?.close()
        clearTimeout(debounce)
        await reloading
        await generations.close()
        await closeClients()
      })()
      return closed
    },
  }
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
