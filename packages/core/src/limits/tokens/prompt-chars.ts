import { invalid, skipSpace, stringEnd, valueEnd } from '../../forward/json-scan.js'

// The bytes the loop below compares, as local constants: a hot loop over every byte of a body
// should not read imported bindings (a module transform may turn each into a property access).
const QUOTE = 0x22
const COLON = 0x3a
const OPEN_BRACE = 0x7b
const CLOSE_BRACE = 0x7d
const OPEN_BRACKET = 0x5b
const CLOSE_BRACKET = 0x5d

/** Characters (UTF-8 bytes) the estimate counts as one token. */
export const CHARS_PER_TOKEN = 4

/**
 * How much of the prompt each top-level field holds, for the estimate. Text fields count the
 * bytes of their strings (chat `messages` with their text parts, tool calls and names; completion
 * `prompt`, Responses `input`, TGI `inputs`, SGLang `text`/`input_ids`, Ollama `system`…), and a
 * number in them counts as a token (a prompt given as token ids). Media (images, audio, files) is
 * skipped: the engine counts it in its own way and the usage settles it. Schema fields (`tools`,
 * `functions`, `response_format`…) are rendered into the prompt as JSON by the chat template, so
 * their whole JSON text counts.
 */
const TEXT_FIELDS = new Set([
  'messages',
  'prompt',
  'input',
  'inputs',
  'input_ids',
  'text',
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

/** Characters of prompt a schema field holds (its JSON text), or undefined for any other field. */
export function schemaChars(key: string, start: number, end: number): number | undefined {
  return SCHEMA_FIELDS.has(key) ? end - start : undefined
}

export function isTextField(key: string): boolean {
  return TEXT_FIELDS.has(key)
}

const MINUS = 0x2d
const ZERO = 0x30
const NINE = 0x39

/**
 * Reads the value at `at` of a text field: its string bytes and numbers, skipping the values of
 * media keys; returns the characters and where the value ends. One pass, brackets counted, no
 * recursion, so a deeply nested value costs its length.
 */
export function textValue(body: Buffer, at: number): { chars: number; end: number } {
  const first = body[at]
  if (first !== OPEN_BRACE && first !== OPEN_BRACKET) {
    const end = valueEnd(body, at)
    if (first === QUOTE) return { chars: end - at - 2, end }
    return { chars: first === MINUS || (first! >= ZERO && first! <= NINE) ? CHARS_PER_TOKEN : 0, end }
  }
  let chars = 0
  let depth = 0
  let i = at
  while (i < body.length) {
    const byte = body[i]!
    if (byte === QUOTE) {
      const close = stringEnd(body, i)
      const next = skipSpace(body, close)
      if (body[next] === COLON) {
        const value = skipSpace(body, next + 1)
        i = isMediaKey(body, i, close) ? valueEnd(body, value) : value
      } else {
        chars += close - i - 2
        i = close
      }
    } else if (byte === OPEN_BRACE || byte === OPEN_BRACKET) {
      depth++
      i++
    } else if (byte === CLOSE_BRACE || byte === CLOSE_BRACKET) {
      i++
      if (--depth === 0) return { chars, end: i }
    } else if (byte === MINUS || (byte >= ZERO && byte <= NINE)) {
      chars += CHARS_PER_TOKEN
      i = valueEnd(body, i)
    } else i++
  }
  return invalid(at)
}

function isMediaKey(body: Buffer, start: number, end: number): boolean {
  return end - start <= 14 && MEDIA_KEYS.has(body.toString('latin1', start + 1, end - 1))
}
