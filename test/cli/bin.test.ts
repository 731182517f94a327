import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import { afterEach, describe, expect, it } from 'vitest'
import { Cleanup, chat, closedPort, fake, openStream, send, waitFor } from '../helpers/http.js'
import { configFile, gatewayYaml } from './support.js'

// The command a user runs (`npx tollgate` links to it), on the built packages (`npm test` builds first).
const bin = fileURLToPath(new URL('../../packages/cli/bin/tollgate.js', import.meta.url))

const cleanup = new Cleanup()
afterEach(() => cleanup.run())

function run(args: string[], env: NodeJS.ProcessEnv = {}) {
  const child = spawn(process.execPath, [bin, ...args], { env: { PATH: process.env.PATH, ...env } })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (chunk) => (stdout += chunk))
  child.stderr.on('data', (chunk) => (stderr += chunk))
  const exited = once(child, 'exit').then(([code]) => code as number)
  return { child, exited, output: () => ({ stdout, stderr }) }
}

function stop(child: ChildProcess) {
  return () => {
    if (child.exitCode === null) child.kill('SIGKILL')
  }
}

describe('the tollgate command', () => {
  it('exits 0 for a good file, 1 with file:line:col for a bad one or a port in use, 2 for bad usage', async () => {
    const good = run([
      'check',
      '--config',
      fileURLToPath(new URL('../../examples/gateway.yaml', import.meta.url)),
    ])
    expect(await good.exited).toBe(0)
    expect(good.output().stdout).toMatch(/gateway\.yaml: ok \(3 backends, 3 routes\)/)
    // What it found, to compare with what was meant.
    expect(good.output().stdout).toMatch(/^ {2}route POST \/v1\/chat\/completions → forward, limits /m)
    expect(good.output().stdout).toMatch(/status page \/gateway/)

    const empty = configFile('')
    const nothing = run(['check', '--config', empty.path])
    expect(await nothing.exited).toBe(0)
    expect(nothing.output().stderr).toMatch(/^warning: gateway\.yaml: serves nothing: no routes/)

    const version = run(['--version'])
    expect(await version.exited).toBe(0)
    expect(version.output().stdout.trim()).toMatch(/^\d+\.\d+\.\d+/)
    const help = run(['--help'])
    expect(await help.exited).toBe(0)
    for (const text of ['docs: https://', 'LOG_LEVEL', '--port N', '--config FILE', '--version'])
      expect(help.output().stdout).toContain(text)

    const bad = configFile(`backends:\n  - { url: "\${MODEL_URL}" }\n`)
    const failed = run(['check', '--config', bad.path], { MODEL_URL: 'ftp://secret-host' })
    expect(await failed.exited).toBe(1)
    expect(failed.output().stderr).toBe(
      'gateway.yaml:2:12: backends[0].url must be an http:// or https:// URL\n',
    )

    const taken = configFile(
      `listen: { host: 127.0.0.1, port: ${await closedPort()} }\nredis: redis://127.0.0.1:${await closedPort()}\n`,
    )
    const first = run(['serve', '--config', taken.path])
    cleanup.add(stop(first.child), null)
    await waitFor(() => first.output().stdout.includes('listening on'), 'the first gateway to listen')
    const second = run(['serve', '--config', taken.path])
    cleanup.add(stop(second.child), null)
    expect(await second.exited).toBe(1)
    expect(second.output().stderr).toMatch(/tollgate: listen EADDRINUSE/)

    const badPort = run(['serve', '--config', taken.path], { TOLLGATE_PORT: '80a' })
    expect(await badPort.exited).toBe(2)
    expect(badPort.output().stderr).toMatch(
      /^tollgate: TOLLGATE_PORT must be a port number from 0 to 65535; got "80a"/,
    )

    const usage = run(['serve'])
    expect(await usage.exited).toBe(2)
    expect(usage.output().stderr).toMatch(/usage: tollgate serve --config gateway\.yaml/)
  })

  it('serve: reloads on SIGHUP, and on SIGTERM lets a stream finish before exiting 0', async () => {
    const a = await fake(cleanup, { name: 'a', answerTokens: 30, timePerTokenMs: 20 })
    const b = await fake(cleanup, { name: 'b', answerTokens: 1 })
    const file = configFile(gatewayYaml([{ url: a.url, id: 'a' }]))
    const port = await closedPort()
    // The port from TOLLGATE_PORT, as the container image sets it.
    const gateway = run(['serve', '--config', file.path], { TOLLGATE_PORT: String(port) })
    cleanup.add(stop(gateway.child), null)
    await waitFor(() => gateway.output().stdout.includes('listening on'), 'the gateway to listen')

    const first = await send(port, { path: '/v1/chat/completions', body: chat() })
    expect(first.headers['x-backend']).toBe('a')
    file.write(gatewayYaml([{ url: b.url, id: 'b' }]))
    gateway.child.kill('SIGHUP')
    await waitFor(() => gateway.output().stdout.includes('reloaded'), 'the reload')
    expect((await send(port, { path: '/v1/chat/completions', body: chat() })).headers['x-backend']).toBe('b')

    file.write(gatewayYaml([{ url: a.url, id: 'a' }]))
    gateway.child.kill('SIGHUP')
    await waitFor(() => gateway.output().stdout.split('reloaded').length === 3, 'the second reload')
    const stream = await openStream(port, { body: chat({ stream: true }) })
    await stream.nextEvent()
    gateway.child.kill('SIGTERM')
    const events = await stream.rest()
    expect(stream.complete).toBe(true)
    expect(events.at(-1)).toBe('data: [DONE]')
    expect(await gateway.exited).toBe(0)
    const log = gateway.output().stdout
    expect(log).toMatch(/tollgate: SIGTERM: draining; no new connections, 1 request in flight get up to 10 s/)
    expect(log).toMatch(/tollgate: stopped; exiting/)
    expect(log).toMatch(
      /listening on http:\/\/127\.0\.0\.1:\d+ with .*gateway\.yaml; 2 routes \(POST \/v1\/chat\/completions, GET \/v1\/models\); 1 backend; probes http:\/\/127\.0\.0\.1:\d+\/livez http:\/\/127\.0\.0\.1:\d+\/readyz/,
    )
  })
})
