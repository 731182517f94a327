import { ConfigError } from './config-error.js'
import type { Finding } from './schema-errors.js'
import { type ConfigPath, type ConfigSource, formatPath } from './source.js'
import type { GatewayConfig } from './types.js'

function parsePath(text: string): (string | number)[] {
  const parts: (string | number)[] = []
  for (const match of text.matchAll(/([^.[\]]+)|\[(\d+)\]/g)) {
    parts.push(match[2] === undefined ? (match[1] as string) : Number(match[2]))
  }
  return parts
}

/**
 * The plugin's own option error (`tollgate: option "backends[0].weight" must be …`) placed at
 * the line and column of that value in the file. Paths inside `backends` are renumbered, since
 * the plugin sees only the URL backends, not the DNS ones.
 */
export function pluginProblem(
  error: unknown,
  config: GatewayConfig,
  source: ConfigSource,
  routeIndex?: number,
): ConfigError {
  return new ConfigError([pluginFinding(error, config, source, routeIndex).text])
}

/** The same, with the path of the option in the file ([] when the message names none). */
export function pluginFinding(
  error: unknown,
  config: GatewayConfig,
  source: ConfigSource,
  routeIndex?: number,
): Finding {
  const message = (error instanceof Error ? error.message : String(error)).replace(/^tollgate: /, '')
  const quoted = /option "([^"]+)"/.exec(message)
  let path: ConfigPath = []
  let text = message
  if (routeIndex !== undefined && !quoted?.[1]?.startsWith('config.rateLimit of ')) {
    // Not about the route's limits (e.g. forward: true in a file without backends).
    path = ['routes', routeIndex]
    text = `${formatPath(path)}: ${message}`
  } else if (routeIndex !== undefined) {
    const inner = quoted?.[1]?.replace(/^config\.rateLimit of [A-Z,]+ \S+?(?=\.|$)/, '') ?? ''
    path = ['routes', routeIndex, 'rateLimit', ...parsePath(inner)]
    text = quoted
      ? message.replace(quoted[0], `option "${formatPath(path)}"`)
      : `${formatPath(path)}: ${message}`
  } else {
    // Some checks name the option without quotes: `backends[1].models must be …`.
    const named = quoted?.[1] ?? /^([A-Za-z]+(?:\[\d+\]|\.[A-Za-z]+)*) must /.exec(message)?.[1]
    if (named === undefined) return { path: [], text: source.atPath([], text) }
    const parts = parsePath(named)
    if (parts[0] === 'backends' && typeof parts[1] === 'number') {
      parts[1] = config.staticBackendIndex[parts[1]] ?? parts[1]
      text = message.replace(named, formatPath(parts))
    }
    path = parts
  }
  // A value from the environment may be a secret, and plugin messages may quote a value anywhere
  // (a limit string's parse error does): keep only the option's name.
  if (path.length > 0 && source.fromEnvironment(path)) {
    text = `option "${formatPath(path)}" is not valid; its value comes from an environment variable and is not shown`
  }
  return { path, text: source.atPath(path, text) }
}
