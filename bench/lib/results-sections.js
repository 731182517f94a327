/**
 * The suite sections of `bench/RESULTS.md`. Each starts at `<!-- suite:NAME -->` and ends at
 * `<!-- /suite -->`, or at the next section's marker or the end of the file: the scripts that run
 * on their own (routing.js, fairness.js, tokens.js) add sections without a closing marker, and
 * `run.js` must keep them when it rewrites the file.
 */

const START = /<!-- suite:([a-z0-9-]+) -->\n/g
const END = '\n<!-- /suite -->'

/**
 * The sections of `text` in the order they appear, as [name, body]; a name seen twice keeps its
 * first place and its last body (an appended section is the newer one).
 * @param {string} text
 * @returns {[string, string][]}
 */
export function parseSections(text) {
  const starts = [...text.matchAll(START)]
  /** @type {Map<string, string>} */
  const sections = new Map()
  for (const [i, m] of starts.entries()) {
    const from = /** @type {number} */ (m.index) + m[0].length
    const next = starts[i + 1]
    const until = next === undefined ? text.length : /** @type {number} */ (next.index)
    let body = text.slice(from, until)
    const closed = body.indexOf(END)
    if (closed !== -1) body = body.slice(0, closed)
    sections.set(/** @type {string} */ (m[1]), body.trimEnd())
  }
  return [...sections.entries()]
}

/**
 * The previous file's sections with the fresh ones in their place; fresh sections the file did
 * not have yet come after them, in `order`. Sections no suite of this run wrote are kept as they were.
 * @param {readonly [string, string][]} previous
 * @param {Readonly<Record<string, string | undefined>>} fresh
 * @param {readonly string[]} order
 * @returns {[string, string][]}
 */
export function mergeSections(previous, fresh, order) {
  /** @type {[string, string][]} */
  const merged = previous.map(([name, body]) => [name, fresh[name] ?? body])
  for (const name of order) {
    const body = fresh[name]
    if (body !== undefined && !merged.some(([n]) => n === name)) merged.push([name, body])
  }
  return merged
}

/**
 * The sections as the file holds them, each between its markers.
 * @param {readonly [string, string][]} sections
 */
export function renderSections(sections) {
  return sections.map(([name, body]) => `<!-- suite:${name} -->\n${body}${END}`).join('\n\n')
}
