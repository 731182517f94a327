/** Markdown tables and number formatting for RESULTS.md. */

/**
 * @param {string[]} header
 * @param {Array<Array<string | number>>} rows
 * @param {Array<'l' | 'r'>} [align] per column; numbers read best right-aligned
 */
export function table(header, rows, align = header.map((_, i) => (i === 0 ? 'l' : 'r'))) {
  const line = (/** @type {Array<string | number>} */ cells) => `| ${cells.map(String).join(' | ')} |`
  const rule = `| ${align.map((a) => (a === 'r' ? '---:' : '---')).join(' | ')} |`
  return [line(header), rule, ...rows.map(line)].join('\n')
}

/** Significant figures without exponent notation; "n/a" for NaN. */
export function num(/** @type {number} */ value, digits = 3) {
  if (!Number.isFinite(value)) return 'n/a'
  if (value === 0) return '0'
  const abs = Math.abs(value)
  if (abs >= 10 ** digits) return Math.round(value).toLocaleString('en-US')
  const decimals = Math.max(0, digits - 1 - Math.floor(Math.log10(abs)))
  return value.toFixed(decimals)
}

/** "×1.23" for a ratio. */
export function times(/** @type {number} */ value) {
  return Number.isFinite(value) ? `×${value.toFixed(2)}` : 'n/a'
}

/** 0.123 -> "12%". */
export function pct(/** @type {number} */ value) {
  return Number.isFinite(value) ? `${Math.round(value * 100)}%` : 'n/a'
}
