import { createRequire } from 'node:module'
import { parseArgs } from 'node:util'
import { checkSummary } from './check-summary.js'
import { checkAll } from './config/check-all.js'
import { ConfigError } from './config/config-error.js'
import { type RunningGateway, serve } from './serve.js'

const DOCS = 'https://github.com/tollgate-dev/tollgate/tree/main/packages/cli#readme'

const USAGE = `usage: tollgate serve --config gateway.yaml [--port N]
       tollgate check --config gateway.yaml
       tollgate --version | --help

commands:
  serve   run the gateway the file describes; SIGHUP or a change of the file reloads it,
          SIGTERM or SIGINT drains requests in flight (shutdownTimeoutMs) and exits
    -c, --config FILE   the gateway file (YAML)
    -p, --port N        listen on this port instead of listen.port (0: any free port)
  check   report every problem of the file at once (file:line:col), or what it found;
          starts nothing, connects to nothing; exit 0 good, 1 problems
    -c, --config FILE   the gateway file (YAML)

options:
  -h, --help      this text
  -v, --version   the version of @tollgate/cli

environment:
  TOLLGATE_PORT   the port serve listens on when --port is not given (overrides listen.port)
  LOG_LEVEL       pino log level of serve: fatal, error, warn, info (default), debug, trace;
                  debug adds Fastify's own two lines per request
  \${NAME} in the file is replaced by the variable NAME (\${NAME:-default} with a default)

docs: ${DOCS}`

function version(): string {
  return (createRequire(import.meta.url)('../package.json') as { version: string }).version
}

/** The `tollgate` command. Resolves to the exit code (serve resolves only when stopped). */
export async function main(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  let parsed: ReturnType<typeof parse>
  try {
    parsed = parse(argv)
  } catch (error) {
    console.error(`tollgate: ${(error as Error).message}\n${USAGE}`)
    return 2
  }
  const { values, positionals } = parsed
  const command = positionals[0]
  if (values.help || command === 'help') {
    console.log(USAGE)
    return 0
  }
  if (values.version) {
    console.log(version())
    return 0
  }
  if ((command !== 'serve' && command !== 'check') || positionals.length > 1 || values.config === undefined) {
    console.error(USAGE)
    return 2
  }
  // --port, else TOLLGATE_PORT (the container image sets it, so its health check knows the port).
  let port: number | undefined
  const portText = values.port ?? env.TOLLGATE_PORT
  if (portText !== undefined && portText !== '') {
    port = Number(portText)
    if (!/^\d+$/.test(portText) || port > 65_535) {
      const name = values.port === undefined ? 'TOLLGATE_PORT' : '--port'
      console.error(
        `tollgate: ${name} must be a port number from 0 to 65535; got ${JSON.stringify(portText)}`,
      )
      return 2
    }
  }
  try {
    if (command === 'check') {
      const { config, problems, warnings } = await checkAll(values.config, env)
      if (problems.length > 0) throw new ConfigError(problems)
      for (const warning of warnings) console.error(`warning: ${warning}`)
      console.log(checkSummary(values.config, config))
      return 0
    }
    // Installed before the file is loaded: SIGHUP's default action would kill a starting gateway,
    // and a SIGTERM during startup must still stop it once it is up.
    let gateway: RunningGateway | undefined
    let hangUp = false
    let stopping = false
    const reload = () => {
      if (gateway) void gateway.reload()
      else hangUp = true
    }
    const stopped = new Promise<number>((resolve) => {
      const stop = (signal: NodeJS.Signals) => {
        stopping = true
        gateway?.close(signal).then(
          () => resolve(0),
          () => resolve(1),
        )
      }
      process.once('SIGTERM', stop)
      process.once('SIGINT', stop)
      process.on('SIGHUP', reload)
    }).finally(() => process.off('SIGHUP', reload))
    try {
      gateway = await serve({ configFile: values.config, port, env })
    } catch (error) {
      process.off('SIGHUP', reload)
      throw error
    }
    if (stopping) {
      await gateway.close()
      return 0
    }
    if (hangUp) void gateway.reload()
    return await stopped
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(error.problems.join('\n'))
      return 1
    }
    console.error(`tollgate: ${(error as Error).message}`)
    return 1
  }
}

function parse(argv: string[]) {
  return parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      config: { type: 'string', short: 'c' },
      port: { type: 'string', short: 'p' },
      help: { type: 'boolean', short: 'h' },
      version: { type: 'boolean', short: 'v' },
    },
  })
}
