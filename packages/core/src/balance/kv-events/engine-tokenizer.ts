import type { Dispatcher } from 'undici'
import { undici } from '../../undici-loader.js'

/**
 * Token ids of a request's prompt from the engine's own `/tokenize` endpoint (vLLM's shape:
 * `POST /tokenize {model, messages}` applies the chat template as a chat request does,
 * `{model, prompt}` tokenizes a completion's prompt; the answer's `tokens` are the ids the
 * engine's cache is keyed by). The wait is bounded: past `timeoutMs` the request is routed
 * without tokens, and a late answer is dropped.
 */
export class EngineTokenizer {
  readonly #timeoutMs: number
  readonly #maxTokens: number
  #agent: Dispatcher | undefined

  constructor(timeoutMs: number, maxTokens: number) {
    this.#timeoutMs = timeoutMs
    this.#maxTokens = maxTokens
  }

  /** The prompt's tokens, or undefined when there is no field to tokenize or the engine did not answer in time. */
  async tokenize(
    url: URL,
    model: string | undefined,
    fields: Record<string, unknown>,
  ): Promise<number[] | undefined> {
    let body: string
    if (Array.isArray(fields.messages)) body = JSON.stringify({ model, messages: fields.messages })
    else if (typeof fields.prompt === 'string') body = JSON.stringify({ model, prompt: fields.prompt })
    else return undefined
    this.#agent ??= new (undici().Agent)({ connections: 16 })
    const controller = new AbortController()
    const timer = setTimeout(() => controller.abort(), this.#timeoutMs)
    try {
      const response = await this.#agent.request({
        origin: url.origin,
        path: url.pathname,
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body,
        signal: controller.signal,
      })
      if (response.statusCode !== 200) {
        await response.body.dump()
        return undefined
      }
      const answer = (await response.body.json()) as { tokens?: unknown }
      return tokenList(answer.tokens, this.#maxTokens)
    } catch {
      return undefined
    } finally {
      clearTimeout(timer)
    }
  }

  async close(): Promise<void> {
    const agent = this.#agent
    this.#agent = undefined
    await agent?.destroy()
  }
}

function tokenList(value: unknown, maxTokens: number): number[] | undefined {
  if (!Array.isArray(value)) return undefined
  const tokens = value.length > maxTokens ? value.slice(0, maxTokens) : value
  for (const t of tokens) if (!Number.isInteger(t)) return undefined
  return tokens as number[]
}
