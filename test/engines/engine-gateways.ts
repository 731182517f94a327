import type { BackendsHandle, TokenReservation } from '@tollgate/core'
import { apiKeyKey } from '@tollgate/core'
import type { Cleanup } from '../helpers/cleanup.js'
import { type Framework, startExpress, startFastify } from '../helpers/gateways.js'

/** The paths a llama-server answers that the engine tests forward: OpenAI's and its native one. */
export const ENGINE_PATHS = ['/v1/chat/completions', '/v1/completions', '/completion'] as const

export interface EngineGateway {
  port: number
  url: string
  backends: BackendsHandle
  /** Reservations as `onTokensSettled` reported them, when `tokens` is set. */
  settled: TokenReservation[]
}

export interface EngineGatewaySetup {
  /** Gateway options: `backends`, `strategy`, `loadReports` … */
  options: Record<string, unknown>
  /** A token budget on every forwarded path, keyed by API key. */
  tokens?: string
}

/** A gateway through `framework` forwarding ENGINE_PATHS to llama-servers. */
export async function startEngineGateway(
  cleanup: Cleanup,
  framework: Framework,
  setup: EngineGatewaySetup,
): Promise<EngineGateway> {
  const settled: TokenReservation[] = []
  const options = {
    keyGenerator: apiKeyKey,
    onTokensSettled: (_req: unknown, reservation: TokenReservation) => {
      settled.push(reservation)
    },
    ...setup.options,
  }
  if (framework === 'Fastify') {
    const { app, port } = await startFastify(cleanup, options as never, (app) => {
      for (const path of ENGINE_PATHS) {
        const config = setup.tokens === undefined ? {} : { rateLimit: { tokens: setup.tokens } }
        app.post(path, { config: config as never }, app.tollgate.forward())
      }
    })
    return { port, url: `http://127.0.0.1:${port}`, backends: app.tollgate.backends, settled }
  }
  const { gate, port } = await startExpress(cleanup, options as never, (app, gate) => {
    for (const path of ENGINE_PATHS) {
      if (setup.tokens === undefined) app.post(path, gate.forward())
      else app.post(path, gate.limit({ tokens: setup.tokens as never }), gate.forward())
    }
  })
  return { port, url: `http://127.0.0.1:${port}`, backends: gate.backends, settled }
}

/**
 * A llama-server answer with what differs between two runs of the same request taken out: the
 * completion id, the creation time and the `timings` block. Everything else must be byte-equal.
 */
export function withoutRunFields(text: string): string {
  return text
    .replace(/"id":"chatcmpl-[^"]*"/g, '"id":""')
    .replace(/"id":"cmpl-[^"]*"/g, '"id":""')
    .replace(/"created":\d+/g, '"created":0')
    .replace(/,"timings":\{[^}]*\}/g, '')
}
