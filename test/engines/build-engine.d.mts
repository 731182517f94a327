export interface Engine {
  /** The llama-server binary. */
  server: string
  /** The tiny random-weight GGUF model. */
  model: string
}

export function engineCommit(): string
export function findEngine(): Engine | null
export function ensureEngine(options?: { say?: (line: string) => void }): Promise<Engine>
