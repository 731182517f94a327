/**
 * The fake's tokenizer: one token per four characters (tokenizers average about that on English
 * text), its id a hash of those characters. Deterministic and exposed at `POST /tokenize`, so a
 * gateway that asks the fake for a prompt's tokens gets exactly the ids its KV cache is keyed by
 * and its KV events carry, as it would from vLLM.
 */

export const CHARS_PER_TOKEN = 4
/** Ids fall below this, as a real vocabulary's do. */
export const VOCABULARY_SIZE = 200_003

/** @param {string} text @returns {number[]} */
export function tokenize(text) {
  const tokens = new Array(Math.ceil(text.length / CHARS_PER_TOKEN))
  for (let t = 0; t < tokens.length; t++) {
    let h = 0x811c9dc5
    const end = Math.min(text.length, (t + 1) * CHARS_PER_TOKEN)
    for (let i = t * CHARS_PER_TOKEN; i < end; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193)
    tokens[t] = (h >>> 0) % VOCABULARY_SIZE
  }
  return tokens
}
