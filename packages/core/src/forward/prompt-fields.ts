import { nestsDeeperThan, type TopLevelFields } from './json-fields.js'

/**
 * A prompt value larger than this is not parsed for routing: the request is routed as if it had
 * no prompt. Prefix affinity reads only the prompt's start, and parsing a huge or deeply nested
 * value would block the event loop for every other request.
 */
export const MAX_PROMPT_VALUE_BYTES = 1024 * 1024
const MAX_PROMPT_DEPTH = 16

/**
 * The body's prompt field (`messages`, `prompt` or `input`) as a one-key object a prompt reader
 * takes, parsing that value alone; undefined when there is none or it is too big or deep to read.
 */
export function promptFieldsOf(body: Buffer, fields: TopLevelFields): Record<string, unknown> | undefined {
  const span = fields.prompt
  if (span === undefined || span.end - span.start > MAX_PROMPT_VALUE_BYTES) return undefined
  const value = body.subarray(span.start, span.end)
  if (nestsDeeperThan(value, MAX_PROMPT_DEPTH)) return undefined
  try {
    return { [span.key]: JSON.parse(value.toString('utf8')) as unknown }
  } catch {
    // The scan found the value's bounds but not its validity; the backend answers a broken body.
    return undefined
  }
}
