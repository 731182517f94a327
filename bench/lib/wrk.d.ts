export interface WrkResult {
  requests: number
  durationMs: number
  requestsPerSecond: number
  latencyMs: { p50: number; p75: number; p90: number; p99: number }
  non2xx: number
  socketErrors: { connect: number; read: number; write: number; timeout: number }
}
export function parseDurationMs(text: string): number
export function parseWrkOutput(text: string): WrkResult
export function runWrk(options: {
  url: string
  seconds: number
  connections?: number
  script?: string
  env?: Record<string, string>
  core?: number | null
  timeoutSeconds?: number
}): Promise<WrkResult>
