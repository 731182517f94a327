/**
 * A map of at most `capacity` entries that drops the least recently used one: the parsed forms
 * of the strings a `limits` or `tokens` function returns, so each distinct string is parsed once
 * and a function returning ever new strings cannot grow memory without bound.
 */
export class RecentlyUsed<V> {
  readonly #capacity: number
  readonly #entries = new Map<string, V>()

  constructor(capacity: number) {
    this.#capacity = capacity
  }

  /** The value for `key`, made by `make` when absent; either way `key` becomes the most recent. */
  get(key: string, make: (key: string) => V): V {
    let value = this.#entries.get(key)
    if (value !== undefined) {
      this.#entries.delete(key)
    } else {
      value = make(key)
      if (this.#entries.size >= this.#capacity) this.#entries.delete(this.#entries.keys().next().value!)
    }
    this.#entries.set(key, value)
    return value
  }
}
