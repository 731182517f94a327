/**
 * The counts a backend reports, as `UsageScanner` finds them. `undefined`: not reported.
 * Within one top-level JSON value the counts are added up (llama.cpp answers several prompts as
 * an array, TGI lists `best_of` sequences); of several values (an event stream, Ollama's NDJSON)
 * the last one that reported wins, since engines repeat running totals in their stream chunks.
 */
export interface ReportedCounts {
  /** OpenAI-style `usage.prompt_tokens` / `usage.completion_tokens` (vLLM, SGLang, llama.cpp /v1). */
  readonly promptTokens: number | undefined
  readonly completionTokens: number | undefined
  /** llama.cpp's native `/completion`: `tokens_evaluated` / `tokens_predicted`. */
  readonly tokensEvaluated: number | undefined
  readonly tokensPredicted: number | undefined
  /** Ollama's native API: `prompt_eval_count` / `eval_count`. */
  readonly promptEvalCount: number | undefined
  readonly evalCount: number | undefined
  /** TGI's native `details.generated_tokens`, and the length of `details.prefill` when sent. */
  readonly generatedTokens: number | undefined
  readonly prefill: number | undefined
  /** Some count was there but not a finite whole number >= 0 (a string, null, 1.5, -3, a 400-digit number). */
  readonly invalid: boolean
}

const NUMBER_KEYS = [
  'prompt_tokens',
  'completion_tokens',
  'tokens_evaluated',
  'tokens_predicted',
  'prompt_eval_count',
  'eval_count',
  'generated_tokens',
] as const
const PROMPT_TOKENS = 0
const COMPLETION_TOKENS = 1
const GENERATED_TOKENS = 6
const PREFILL = NUMBER_KEYS.length
const SLOTS = NUMBER_KEYS.length + 1
/** String values that are generated text: OpenAI's choices, llama.cpp, Ollama, TGI's tokens. */
const TEXT_KEYS = new Set(['content', 'text', 'response', 'reasoning_content', 'arguments'])
/** TGI's whole answer; counted only when no token-by-token text was seen (it repeats them). */
const WHOLE_TEXT_KEY = 'generated_text'
/** Longer key names are none of the above: not kept. */
const MAX_KEY_CHARS = 24
/** A number this long is no count (and a 400-digit one would read as Infinity). */
const MAX_NUMBER_CHARS = 32
const TOO_LONG = 'too long'
const JSON_NUMBER = /^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?$/

const NONE = 0
const KEY = 1
const TEXT = 2
const WHOLE_TEXT = 3

const QUOTE = 34
const BACKSLASH = 92
const COLON = 58
const OPEN_BRACE = 123
const CLOSE_BRACE = 125
const OPEN_BRACKET = 91
const CLOSE_BRACKET = 93

function isSpace(c: number): boolean {
  return c === 32 || c === 10 || c === 13 || c === 9
}

function isNumberChar(c: number): boolean {
  return (c >= 48 && c <= 57) || c === 45 || c === 43 || c === 46 || c === 101 || c === 69
}

/**
 * Reads what a backend says a request cost, and how much text it generated, from a JSON answer,
 * an event stream or NDJSON fed to it in pieces of any size: a small tokenizer over the text
 * (strings, nesting, numbers) that keeps no more than a key name or a number between pieces. Key
 * names are found only outside strings, so generated text that spells one out (escaped quotes)
 * is never read as a count. Counts are read as JSON numbers (`1e3` is 1000).
 */
export class UsageScanner {
  /** Characters of generated text (string values of `content`, `text`, …). */
  textChars = 0
  /** Non-empty generated text values seen: a stream's content events. */
  textValues = 0
  #wholeTextChars = 0
  #depth = 0
  #inString = false
  #escape = false
  /** What the string being read is: a candidate key, counted text, or neither. */
  #stringKind = NONE
  #string = ''
  #afterString = false
  /** The key whose value comes next (after its `:`), or undefined. */
  #key: string | undefined
  #awaitingValue = false
  #number: string | undefined
  #numberSlot = -1
  /** Depth of the `prefill` array being counted, 0 when none. */
  #prefillDepth = 0
  /** This top-level value's counts, added up; NaN marks one that was not a valid count. */
  #current = new Array<number | undefined>(SLOTS).fill(undefined)
  #currentHas = false
  #reported: ReportedCounts | undefined
  /** Where something can matter outside a string, and where a string's plain run ends. */
  readonly #structural = /["{}[\]]/g
  readonly #stringEnd = /["\\]/g
  /** Top-level values that carried counts, so a caller can tell whether the last piece did. */
  reportingValues = 0

  /** The counts of the last top-level value that carried any. */
  get reported(): ReportedCounts | undefined {
    return this.#reported
  }

  /** Generated text in characters: token-by-token text, else TGI's whole `generated_text`. */
  get generatedChars(): number {
    return this.textChars > 0 ? this.textChars : this.#wholeTextChars
  }

  feed(text: string): void {
    const n = text.length
    let i = 0
    while (i < n) {
      if (this.#inString) {
        i = this.#inStringFrom(text, i)
        continue
      }
      if (this.#number === undefined && !this.#afterString && !this.#awaitingValue) {
        // Nothing but a quote or a bracket can matter here: skip numbers, commas, literals at once.
        const structural = this.#structural
        structural.lastIndex = i
        const found = structural.exec(text)
        if (found === null) return
        i = found.index
      }
      this.#outside(text, i)
      i++
    }
  }

  /** Reads a string from `i`; where reading goes on. Runs of plain characters are skipped whole. */
  #inStringFrom(text: string, i: number): number {
    if (this.#escape) {
      this.#escape = false
      this.#countText(1)
      return i + 1
    }
    if (this.#stringKind === KEY) {
      const c = text.charCodeAt(i)
      if (c === QUOTE) this.#closeString()
      else if (c === BACKSLASH || this.#string.length >= MAX_KEY_CHARS) {
        this.#stringKind = NONE
        if (c === BACKSLASH) this.#escape = true
      } else this.#string += text[i]
      return i + 1
    }
    const special = this.#stringEnd
    special.lastIndex = i
    const found = special.exec(text)
    const end = found === null ? text.length : found.index
    this.#countText(end - i)
    if (found === null) return end
    if (text.charCodeAt(end) === QUOTE) this.#closeString()
    else {
      this.#escape = true
      this.#countText(1)
    }
    return end + 1
  }

  #countText(chars: number): void {
    if (this.#stringKind === TEXT) this.textChars += chars
    else if (this.#stringKind === WHOLE_TEXT) this.#wholeTextChars += chars
  }

  #closeString(): void {
    this.#inString = false
    this.#afterString = this.#stringKind === KEY
  }

  /** One character outside strings. */
  #outside(text: string, i: number): void {
    const c = text.charCodeAt(i)
    if (this.#number !== undefined) {
      if (isNumberChar(c)) {
        // Past the bound it can only be read as no count (a 400-digit number is Infinity).
        if (this.#number !== TOO_LONG)
          this.#number = this.#number.length < MAX_NUMBER_CHARS ? this.#number + text[i] : TOO_LONG
        return
      }
      this.#endNumber()
    }
    if (isSpace(c)) return
    if (c === COLON && this.#afterString) {
      this.#afterString = false
      this.#key = this.#string
      this.#awaitingValue = true
      return
    }
    this.#afterString = false
    const key = this.#awaitingValue ? this.#key : undefined
    this.#awaitingValue = false
    this.#key = undefined
    if (c === QUOTE) {
      this.#inString = true
      this.#string = ''
      if (key === undefined) this.#stringKind = KEY
      else if (TEXT_KEYS.has(key)) {
        this.#stringKind = TEXT
        // Counted once it has a character: an empty content event is not text.
        if (text.charCodeAt(i + 1) !== QUOTE) this.textValues++
      } else {
        this.#stringKind = key === WHOLE_TEXT_KEY ? WHOLE_TEXT : NONE
        // A count written as a string ("12") is no count.
        const slot = (NUMBER_KEYS as readonly string[]).indexOf(key)
        if (slot !== -1) this.#add(slot, Number.NaN)
      }
      return
    }
    if (key !== undefined) this.#value(key, c, text[i]!)
    if (c === OPEN_BRACE || c === OPEN_BRACKET) {
      if (this.#prefillDepth !== 0 && c === OPEN_BRACE && this.#depth === this.#prefillDepth)
        this.#add(PREFILL, 1)
      this.#depth++
    } else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) {
      if (this.#depth > 0) this.#depth--
      if (this.#prefillDepth !== 0 && this.#depth < this.#prefillDepth) this.#prefillDepth = 0
      if (this.#depth === 0) this.#endValue()
    }
  }

  /** The first character of `key`'s value (not a string). */
  #value(key: string, c: number, char: string): void {
    if (key === 'prefill' && c === OPEN_BRACKET) {
      this.#prefillDepth = this.#depth + 1
      this.#add(PREFILL, 0)
      return
    }
    const slot = (NUMBER_KEYS as readonly string[]).indexOf(key)
    if (slot === -1) return
    if (isNumberChar(c)) {
      this.#number = char
      this.#numberSlot = slot
    } else {
      // null, true, an object: not a count.
      this.#add(slot, Number.NaN)
    }
  }

  #endNumber(): void {
    const text = this.#number!
    this.#number = undefined
    const value = JSON_NUMBER.test(text) ? Number(text) : Number.NaN
    this.#add(this.#numberSlot, Number.isInteger(value) && value >= 0 ? value : Number.NaN)
  }

  #add(slot: number, value: number): void {
    this.#current[slot] = (this.#current[slot] ?? 0) + value
    this.#currentHas = true
  }

  /** A top-level value ended: its counts, when it had any, are the ones reported now. */
  #endValue(): void {
    if (this.#number !== undefined) this.#endNumber()
    if (!this.#currentHas) return
    const v = this.#current
    let invalid = false
    for (const x of v) if (x !== undefined && Number.isNaN(x)) invalid = true
    this.#reported = {
      promptTokens: v[PROMPT_TOKENS],
      completionTokens: v[COMPLETION_TOKENS],
      tokensEvaluated: v[2],
      tokensPredicted: v[3],
      promptEvalCount: v[4],
      evalCount: v[5],
      generatedTokens: v[GENERATED_TOKENS],
      prefill: v[PREFILL],
      invalid,
    }
    this.reportingValues++
    this.#current = new Array<number | undefined>(SLOTS).fill(undefined)
    this.#currentHas = false
  }
}
