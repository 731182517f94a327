export interface Target {
  id: string
  pgid: number
  url: string
  script?: string
  env?: Record<string, string>
}
export interface RoundResult {
  requestsPerSecond: number
  cpuMicrosPerRequest: number
  extraCpuMicrosPerRequest: number
  p50Ms: number
  p99Ms: number
  requests: number
  failures: number
}
export function roundOrder(count: number, r: number): number[]
export function runRounds(options: {
  targets: Target[]
  rounds: number
  seconds: number
  warmupSeconds: number
  connections: number
  warmTogether?: boolean
  extraPid?: number | null
  log?: (line: string) => void
}): Promise<Map<string, RoundResult[]>>
export function medians(rounds: RoundResult[]): {
  requestsPerSecond: number
  cpuMicrosPerRequest: number
  extraCpuMicrosPerRequest: number
  p50Ms: number
  p99Ms: number
  failures: number
  rounds: number
}
export function compare(
  a: RoundResult[],
  b: RoundResult[],
  base?: RoundResult[],
): { cpuRatio: number; throughputRatio: number; addedCpuRatio: number; addedCpuInterval: [number, number] }
export function addedCpu(a: RoundResult[], base: RoundResult[]): number
