import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { ConfigError, checkConfigFile, loadConfig } from '../../packages/cli/src/index.js'

const dir = mkdtempSync(join(tmpdir(), 'tollgate-config-'))
let count = 0

function file(text: string): string {
  const path = join(dir, `gateway-${++count}.yaml`)
  writeFileSync(path, text)
  return path
}

function problemsOf(run: () => unknown): string[] {
  try {
    run()
  } catch (error) {
    if (error instanceof ConfigError) return [...error.problems]
    throw error
  }
  throw new Error('expected a ConfigError')
}

async function asyncProblemsOf(run: () => Promise<unknown>): Promise<string[]> {
  try {
    await run()
  } catch (error) {
    if (error instanceof ConfigError) return [...error.problems]
    throw error
  }
  throw new Error('expected a ConfigError')
}

const base = `listen: { host: 127.0.0.1, port: 8080 }
backends:
  - { url: http://127.0.0.1:8001, models: [llama] }
`

describe('gateway file validation', () => {
  it('names the file, line and column of a bad value', () => {
    const path = file(`${base}  - { url: ftp://127.0.0.1:8002 }\nroutes: []\n`)
    const name = path.split('/').at(-1)
    expect(problemsOf(() => loadConfig(path, {}))).toEqual([
      `${name}:4:12: backends[1].url must be an http:// or https:// URL; got "ftp://127.0.0.1:8002"`,
    ])
  })

  it("accepts a backend's load report format, and refuses one it does not know", async () => {
    const good = file(
      'backends:\n  - { url: http://127.0.0.1:8001, metrics: vllm }\n  - { url: http://127.0.0.1:8002, metrics: { format: tgi, path: /metrics } }\nroutes: []\n',
    )
    expect(() => loadConfig(good, {})).not.toThrow()
    const bad = file('backends:\n  - { url: http://127.0.0.1:8001, metrics: ollama }\nroutes: []\n')
    expect(problemsOf(() => loadConfig(bad, {})).join('\n')).toContain('backends[0].metrics')
  })

  it("accepts a backend's KV-event feed with precise-prefix, and refuses an endpoint that is not tcp://host:port", () => {
    const good = file(
      'strategy: precise-prefix\nprecisePrefix: { tokenizeTimeoutMs: 80 }\nbackends:\n  - { url: http://127.0.0.1:8001, kvEvents: "tcp://127.0.0.1:5557", kvEventsReplay: "tcp://127.0.0.1:5558" }\nroutes: []\n',
    )
    expect(() => loadConfig(good, {})).not.toThrow()
    const bad = file(
      'strategy: precise-prefix\nbackends:\n  - { url: http://127.0.0.1:8001, kvEvents: "127.0.0.1:5557" }\nroutes: []\n',
    )
    expect(problemsOf(() => loadConfig(bad, {})).join('\n')).toContain('backends[0].kvEvents')
  })

  it('accepts loraAffinity as true or { loadFactor }, and places a bad one', async () => {
    const backends = 'backends:\n  - { url: http://127.0.0.1:8001, metrics: vllm }\nroutes: []\n'
    for (const value of ['true', 'false', '{ loadFactor: 1 }']) {
      expect(await checkConfigFile(file(`loraAffinity: ${value}\n${backends}`), {})).toBeDefined()
    }
    expect(problemsOf(() => loadConfig(file(`loraAffinity: always\n${backends}`), {}))).toEqual([
      expect.stringMatching(/:1:15: loraAffinity must be true, false or \{ loadFactor \}; got "always"$/),
    ])
    expect(
      await asyncProblemsOf(() => checkConfigFile(file(`loraAffinity: { loadFactr: 1 }\n${backends}`), {})),
    ).toEqual([expect.stringMatching(/:1:\d+: .*loraAffinity.*loadFactr/)])
  })

  it('reports every problem at once, unknown keys with a suggestion', () => {
    const problems = problemsOf(() =>
      loadConfig(
        file(`${base}defautLimits: 10 per minute
listen2: x
routes:
  - { method: POST, path: v1/chat, forward: true }
  - { method: GET, path: /v1/models }
status: { path: /gateway, refreshMs: 5 }
`),
        {},
      ),
    )
    expect(problems).toHaveLength(5)
    expect(problems[0]).toMatch(/:4:1: unknown key "defautLimits"; did you mean "defaultLimits"\?/)
    expect(problems[1]).toMatch(/:5:1: unknown key "listen2"/)
    expect(problems.join('\n')).toMatch(
      /:7:27: routes\[0\]\.path must be a path starting with \/; got "v1\/chat"/,
    )
    expect(problems.join('\n')).toMatch(
      /:8:5: routes\[1\] must be a route with exactly one of forward: true or models: true/,
    )
    expect(problems.join('\n')).toMatch(/:9:38: status\.refreshMs must be >= 200; got 5/)
  })

  it('interpolates environment variables, with defaults', () => {
    const { config } = loadConfig(
      file(`listen: { host: 127.0.0.1, port: 8080 }
backends:
  - { url: "http://\${MODEL_HOST}:\${MODEL_PORT:-8000}" }
keyPrefix: "$\${literal}"
`),
      { MODEL_HOST: '10.1.2.3' },
    )
    expect(config.plugin.backends?.[0]?.url).toBe('http://10.1.2.3:8000')
    expect(config.plugin.keyPrefix).toBe(`\${literal}`)
  })

  it('hides the credentials of a URL it shows', () => {
    const problems = problemsOf(() => loadConfig(file('redis: http://user:hunter2@cache:6379\n'), {}))
    expect(problems).toEqual([
      expect.stringMatching(/:1:8: redis must be a redis:\/\/ .*; got "http:\/\/\*\*\*@cache:6379"$/),
    ])
  })

  it('gives DNS entries no id: each address gets its own', () => {
    const problems = problemsOf(() =>
      loadConfig(file('backends:\n  - { dns: models.internal, port: 80, id: x }\n'), {}),
    )
    expect(problems).toEqual([
      expect.stringMatching(/:2:39: unknown key "backends\[0\]\.id"; known keys are dns, port/),
    ])
  })

  it('names a missing variable', () => {
    const problems = problemsOf(() => loadConfig(file(`redis: \${REDIS_URL}\n`), {}))
    expect(problems).toEqual([expect.stringMatching(/:1:8: environment variable REDIS_URL is not set$/)])
  })

  it('never prints a value that came from the environment', async () => {
    const secret = 'sk-very-secret-value'
    const schema = problemsOf(() =>
      loadConfig(file(`backends:\n  - { url: "\${BACKEND_URL}" }\n`), {
        BACKEND_URL: `ftp://user:${secret}@x`,
      }),
    )
    expect(schema).toHaveLength(1)
    expect(schema[0]).toMatch(/backends\[0\]\.url must be an http:\/\/ or https:\/\/ URL$/)
    const plugin = await asyncProblemsOf(() =>
      checkConfigFile(file(`defaultLimits: "\${LIMITS}"\nroutes: []\n`), { LIMITS: secret }),
    )
    expect(plugin).toHaveLength(1)
    expect(plugin[0]).toMatch(
      /:1:16: option "defaultLimits" is not valid; its value comes from an environment variable/,
    )
    expect([...schema, ...plugin].join('\n')).not.toContain('very-secret')
  })

  it('never prints a value from the environment reached through a YAML alias', async () => {
    const secret = 'sk-live-alias-secret'
    const env = { SECRET: secret, BACKEND_URL: `ftp://user:${secret}@x` }
    // A scalar alias read by the plugin's own checks.
    const plugin = await asyncProblemsOf(() =>
      checkConfigFile(file(`keyPrefix: &s "\${SECRET}"\ndefaultLimits: *s\nroutes: []\n`), env),
    )
    expect(plugin).toEqual([
      expect.stringMatching(
        /:2:16: option "defaultLimits" is not valid; its value comes from an environment variable/,
      ),
    ])
    // A scalar alias the schema refuses.
    const schema = problemsOf(() =>
      loadConfig(file(`keyPrefix: &u "\${BACKEND_URL}"\nbackends:\n  - { url: *u }\n`), env),
    )
    expect(schema).toEqual([
      expect.stringMatching(/backends\[0\]\.url must be an http:\/\/ or https:\/\/ URL$/),
    ])
    // An alias to a mapping that holds the value.
    const nested = problemsOf(() =>
      loadConfig(
        file(`backends:\n  - &b { url: http://127.0.0.1:8001, weight: "\${SECRET}" }\n  - *b\n`),
        env,
      ),
    )
    expect(nested).toEqual([
      expect.stringMatching(/:2:\d+: backends\[0\]\.weight must be a number$/),
      expect.stringMatching(/:3:5: backends\[1\]\.weight must be a number$/),
    ])
    expect([...plugin, ...schema, ...nested].join('\n')).not.toContain('alias-secret')
  })

  it('maps the plugin option errors to the line of the value, past DNS entries', async () => {
    const path = file(`backends:
  - { dns: models.internal, port: 8000 }
  - { url: http://127.0.0.1:8001, models: [a] }
strategy: fastest
routes:
  - { method: POST, path: /v1/chat/completions, forward: true, rateLimit: 60 per minte }
`)
    const strategy = await asyncProblemsOf(() => checkConfigFile(path, {}))
    expect(strategy).toEqual([
      expect.stringMatching(/:4:11: .*strategy.* must be one of .*round-robin.*got .*fastest/),
      expect.stringMatching(/:6:75: option "routes\[0\]\.rateLimit".*unknown unit "minte"/),
    ])

    const route = await asyncProblemsOf(() =>
      checkConfigFile(
        file(
          `routes:\n  - { method: POST, path: /a, forward: true, rateLimit: 60 per minte }\nbackends: []\n`,
        ),
        {},
      ),
    )
    expect(route).toEqual([
      expect.stringMatching(/:2:57: option "routes\[0\]\.rateLimit".*unknown unit "minte"/),
    ])
  })

  it('reports every mistake of a file in one run: schema, plugin options and each bad route limit', async () => {
    const path = file(`strategy: least-latncy
defaultLimits: 200
queue: { size: "100" }
backends:
  - { url: http://127.0.0.1:8001, models: [a] }
routes:
  - { method: POST, path: /a, forward: true, rateLimit: 0 per hour }
  - { method: POST, path: /b, forward: true, rateLimit: 10 per mintue }
  - { method: GET, path: /v1/models, models: true }
`)
    const problems = await asyncProblemsOf(() => checkConfigFile(path, {}))
    expect(problems).toEqual([
      expect.stringMatching(/:2:16: defaultLimits must be a limit string such as "60 per minute"; got 200$/),
      expect.stringMatching(
        /:1:11: option "strategy" must be one of .*; got "least-latncy"; did you mean "least-latency"\?$/,
      ),
      expect.stringMatching(/:3:16: option "queue\.size" must be an integer .*; got "100"/),
      expect.stringMatching(
        /:7:57: option "routes\[0\]\.rateLimit".*0 per hour.*the count must be at least 1/,
      ),
      expect.stringMatching(
        /:8:57: option "routes\[1\]\.rateLimit".*unknown unit "mintue" \(did you mean "minute"\?\)/,
      ),
    ])
  })

  it('suggests the key or value meant for every misspelling', async () => {
    const problems = problemsOf(() =>
      loadConfig(
        file(`acessLog: true
statsu: { path: /gateway }
redis: { url: "redis://127.0.0.1:6379", onError: alow }
routes:
  - { method: PSOT, path: /a, models: true }
`),
        {},
      ),
    )
    expect(problems.join('\n')).toContain('unknown key "acessLog"; did you mean "accessLog"?')
    expect(problems.join('\n')).toContain('unknown key "statsu"; did you mean "status"?')
    expect(problems.join('\n')).toMatch(
      /redis\.onError must be one of .*; got "alow"; did you mean "allow"\?/,
    )
    expect(problems.join('\n')).toMatch(
      /:5:15: routes\[0\]\.method must be .*; got "PSOT"; did you mean "POST"\?/,
    )
  })

  it('warns about a file that serves nothing, and says what a good one holds', async () => {
    const { checkAll } = await import('../../packages/cli/src/config/check-all.js')
    expect((await checkAll(file(''), {})).warnings).toEqual([
      expect.stringMatching(/serves nothing: no routes, so every request gets 404/),
    ])
    expect((await checkAll(file(base), {})).warnings).toEqual([
      expect.stringMatching(/:1:1: serves nothing: 1 backend but no routes/),
    ])
    expect(
      (await checkAll(file(`${base}routes: [{ method: GET, path: /v1/models, models: true }]\n`), {}))
        .warnings,
    ).toEqual([])
  })

  it('places a route error that is not about limits at the route', async () => {
    const problems = await asyncProblemsOf(() =>
      checkConfigFile(file('routes:\n  - { method: POST, path: /a, forward: true }\n'), {}),
    )
    expect(problems).toEqual([expect.stringMatching(/:2:5: routes\[0\]: .*backends/)])
  })

  it('refuses keys that only code can give', () => {
    const problems = problemsOf(() => loadConfig(file('keyGenerator: x\n'), {}))
    expect(problems[0]).toMatch(/:1:1: "keyGenerator" takes a function/)
  })

  it('reads metrics, tracing and accessLog, and refuses a metrics entry without a path', () => {
    const { config } = loadConfig(file('metrics: { path: /metrics }\ntracing: true\naccessLog: true\n'), {})
    expect(config.metrics).toEqual({ path: '/metrics' })
    expect(config.plugin).toMatchObject({ metrics: true, tracing: true, accessLog: true })
    const problems = problemsOf(() => loadConfig(file('metrics: { registry: x }\n'), {}))
    expect(problems.join('\n')).toMatch(/:1:\d+: metrics/)
  })

  it('never shows a backend header value, even one that breaks a rule', async () => {
    const env = { KEY: 'sk-very-secret\nx' }
    const problems = await asyncProblemsOf(() =>
      checkConfigFile(
        // biome-ignore lint/suspicious/noTemplateCurlyInString: the file's own ${VAR} interpolation
        file('backends:\n  - { url: http://127.0.0.1:1, headers: { authorization: "Bearer ${KEY}" } }\n'),
        env,
      ),
    )
    expect(problems).toEqual([expect.stringMatching(/backends\[0\]\.headers\.authorization/)])
    expect(problems.join('\n')).not.toContain('sk-very-secret')
  })

  it("reports a YAML syntax error once, at the parser's position", () => {
    expect(problemsOf(() => loadConfig(file('listen:\n  port: 80: 8\n'), {}))).toEqual([
      expect.stringMatching(/gateway-\d+\.yaml:2:9: Nested mappings are not allowed in compact mappings$/),
    ])
    expect(problemsOf(() => loadConfig(file('backends: [\n  { url: x\n'), {}))).toEqual([
      expect.stringMatching(
        /gateway-\d+\.yaml:3:1: Flow map in block collection must be sufficiently indented/,
      ),
    ])
  })

  it('accepts the example gateway file', async () => {
    const config = await checkConfigFile(new URL('../../examples/gateway.yaml', import.meta.url).pathname, {})
    expect(config.plugin.backends).toHaveLength(3)
    expect(config.status?.path).toBe('/gateway')
  })
})
