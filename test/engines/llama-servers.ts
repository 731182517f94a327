import { type ChildProcess, spawn } from 'node:child_process'
import { describe } from 'vitest'
import type { Cleanup } from '../helpers/cleanup.js'
import { freePort } from '../helpers/ports.js'
import { type Engine, findEngine } from './build-engine.mjs'

const HOW_TO_BUILD = 'node test/engines/build-engine.mjs'

/**
 * The llama-server build of this checkout, or null. Under CI a missing engine is an error (CI
 * builds it before the tests); elsewhere the engine tests are skipped with a note on how to build it.
 */
export function engineOrSkip(): Engine | null {
  const engine = findEngine()
  if (engine !== null) return engine
  if (process.env.CI === 'true') {
    throw new Error(`no llama-server build for the engine tests: run \`${HOW_TO_BUILD}\` first`)
  }
  console.warn(
    `test/engines skipped: no llama-server build yet; \`${HOW_TO_BUILD}\` makes one (a few minutes)`,
  )
  return null
}

/** `describe` when the engine is built, `describe.skip` otherwise (outside CI only). */
export function describeWithEngine(engine: Engine | null): typeof describe | typeof describe.skip {
  return engine === null ? describe.skip : describe
}

export interface LlamaServer {
  readonly url: string
  readonly port: number
  readonly process: ChildProcess
  /** What the server wrote, for a failing test's message. */
  readonly output: string[]
  /** Kills it at once (SIGKILL), as a crash would; resolves when it has exited. */
  kill(): Promise<void>
}

export interface LlamaServerOptions {
  /** Slots (`--parallel`): requests it decodes at once; more wait (`requests_deferred`). */
  slots?: number
  /** Context per slot, in tokens. */
  contextPerSlot?: number
  /** Extra command-line arguments. */
  args?: string[]
}

/**
 * Starts a llama-server on a free port of 127.0.0.1 with the tiny model, `--metrics` on, one thread
 * (the machines that run the tests are small and shared), and waits for its `/health`.
 */
export async function startLlamaServer(
  cleanup: Cleanup,
  engine: Engine,
  options: LlamaServerOptions = {},
): Promise<LlamaServer> {
  const slots = options.slots ?? 2
  const port = await freePort()
  const child = spawn(
    engine.server,
    [
      ...['-m', engine.model, '--host', '127.0.0.1', '--port', String(port)],
      ...['--parallel', String(slots), '--ctx-size', String(slots * (options.contextPerSlot ?? 4096))],
      ...['--threads', '1', '--threads-http', '2', '--metrics', '--no-webui'],
      ...(options.args ?? []),
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  )
  const output: string[] = []
  const keep = (chunk: Buffer): void => {
    output.push(chunk.toString())
    if (output.length > 200) output.splice(0, output.length - 200)
  }
  child.stdout.on('data', keep)
  child.stderr.on('data', keep)
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  const kill = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    await exited
  }
  cleanup.add(kill, null)
  const url = `http://127.0.0.1:${port}`
  await untilHealthy(url, child, output)
  return { url, port, process: child, output, kill }
}

async function untilHealthy(url: string, child: ChildProcess, output: string[]): Promise<void> {
  const deadline = Date.now() + 60_000
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null)
      throw new Error(`llama-server exited while starting:\n${output.join('').slice(-2000)}`)
    try {
      if ((await fetch(`${url}/health`)).status === 200) return
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  throw new Error(`llama-server at ${url} was not healthy within 60 s:\n${output.join('').slice(-2000)}`)
}

/** The server's `llamacpp:*` samples by name (no labels in llama-server's exporter). */
export async function llamaMetrics(server: { url: string }): Promise<Map<string, number>> {
  const text = await (await fetch(`${server.url}/metrics`)).text()
  const samples = new Map<string, number>()
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const [name, value] = line.split(' ')
    samples.set(name!, Number(value))
  }
  return samples
}

/** Prompt tokens (processed and cached) plus generated tokens, by the server's own counters. */
export async function tokensCounted(server: { url: string }): Promise<number> {
  const m = await llamaMetrics(server)
  return (
    (m.get('llamacpp:prompt_tokens_total') ?? 0) +
    (m.get('llamacpp:prompt_tokens_cached_total') ?? 0) +
    (m.get('llamacpp:tokens_predicted_total') ?? 0)
  )
}
