import { COLON, QUOTE, skipSpace, stringEnd, valueEnd } from '../../forward/json-scan.js'

/** Characters (UTF-8 bytes) the estimate counts as one token. */
export const CHARS_PER_TOKEN = 4

/**
 * How much of the prompt each top-level field holds, for the estimate. Text fields count the
 * bytes of their strings (chat `messages` with their text parts, tool calls and names; completion
 * `prompt`, Responses `input`, TGI `inputs`, Ollama `system`…), and a number in them counts as a
 * token (a prompt given as token ids). Media (images, audio, files) is skipped: the engine counts
 * it in its own way and the usage settles it. Schema fields (`tools`, `functions`,
 * `response_format`…) are rendered into the prompt as JSON by the chat template, so their whole
 * JSON text counts.
 */
const TEXT_FIELDS = new Set([
  'messages',
  'prompt',
  'input',
  'inputs',
  'suffix',
  'system',
  'instructions',
  'template',
  'context',
])
const SCHEMA_FIELDS = new Set([
  'tools',
  'functions',
  'tool_choice',
  'function_call',
  'response_format',
  'format',
  'documents',
  'chat_template_kwargs',
])
const MEDIA_KEYS = new Set([
  'image_url',
  'image',
  'images',
  'input_audio',
  'audio',
  'audio_url',
  'video_url',
  'video',
  'file',
  'file_data',
])

/** Characters of prompt the top-level field `key` holds, or undefined when it holds none. */
export function promptChars(key: string, body: Buffer, start: number, end: number): number | undefined {
  if (SCHEMA_FIELDS.has(key)) return end - start
  if (TEXT_FIELDS.has(key)) return textChars(body, start, end)
  return undefined
}

const MINUS = 0x2d
const ZERO = 0x30
const NINE = 0x39

/** String bytes and numbers in `start`..`end`, skipping the values of media keys; one pass. */
function textChars(body: Buffer, start: number, end: number): number {
  let chars = 0
  let at = start
  while (at < end) {
    const byte = body[at]!
    if (byte === QUOTE) {
      const close = stringEnd(body, at)
      const next = skipSpace(body, close, end)
      if (body[next] === COLON) {
        const value = skipSpace(body, next + 1, end)
        at = isMediaKey(body, at, close) ? valueEnd(body, value, end) : value
      } else {
        chars += close - at - 2
        at = close
      }
    } else if (byte === MINUS || (byte >= ZERO && byte <= NINE)) {
      chars += CHARS_PER_TOKEN
      at = valueEnd(body, at, end)
    } else at++
  }
  return chars
}

function isMediaKey(body: Buffer, start: number, end: number): boolean {
  return end - start <= 14 && MEDIA_KEYS.has(body.toString('latin1', start + 1, end - 1))
}
