import { promises as dns } from 'node:dns'
import type { Logger } from '../limits/insured-store.js'
import { checkNumber, checkObject, checkOneOf, fail } from '../validation.js'
import type { BackendConfig } from './types.js'

/** The part of `app.tollgate.backends` / `gate.backends` that discovery drives. */
export interface DiscoveredBackends {
  add(config: BackendConfig): unknown
  drain(id: string): Promise<void>
  undrain(id: string): void
  remove(id: string): boolean
}

/** `dns.promises.Resolver` or anything with its two lookups (tests point one at their own server). */
export interface DnsResolverLike {
  resolve4(name: string): Promise<string[]>
  resolve6(name: string): Promise<string[]>
}

export interface DnsDiscoveryOptions {
  /** The DNS name whose A/AAAA records are the backends, e.g. a Kubernetes headless Service. */
  name: string
  port: number
  /** Default `http`. */
  scheme?: 'http' | 'https'
  /** Path prefix of every backend URL, e.g. `/v1`. Default none. */
  basePath?: string
  /** How often the name is resolved again, in ms. Default 5 000. */
  refreshMs?: number
  /** Which records to ask for. Default `any` (A and AAAA). */
  family?: 4 | 6 | 'any'
  /** Settings every discovered backend gets: models, zone, weight, maxConcurrency. */
  backend?: Omit<BackendConfig, 'url' | 'id'>
  /** Default `new dns.promises.Resolver()` (the system's servers). */
  resolver?: DnsResolverLike
  logger?: Logger
}

// A name with no records (scaled to zero, or deleted) is an empty set; any other failure is the
// resolver's, and must not drain every backend.
const NO_RECORDS = new Set(['ENOTFOUND', 'ENODATA'])

/**
 * Keeps a gateway's backends equal to the addresses a DNS name resolves to: re-resolves it every
 * `refreshMs`, adds new addresses as backends, drains the ones that vanished and removes them once
 * their in-flight requests are done. A backend's id is `name:port/address`.
 */
export class DnsDiscovery {
  readonly #backends: DiscoveredBackends
  readonly #options: Required<
    Pick<DnsDiscoveryOptions, 'name' | 'port' | 'scheme' | 'basePath' | 'refreshMs' | 'family'>
  >
  readonly #template: Omit<BackendConfig, 'url' | 'id'>
  readonly #resolver: DnsResolverLike
  readonly #logger: Logger | undefined
  /** address → is it draining */
  readonly #known = new Map<string, boolean>()
  #timer: NodeJS.Timeout | undefined
  #closed = false
  #failing = false

  constructor(backends: DiscoveredBackends, options: DnsDiscoveryOptions) {
    checkObject('dns', options)
    if (typeof options.name !== 'string' || options.name === '') fail('dns.name', 'a DNS name', options.name)
    const port = checkNumber('dns.port', options.port, 0, { integer: true, min: 1 })
    if (port > 65_535) fail('dns.port', 'a port from 1 to 65535', port)
    const scheme = options.scheme ?? 'http'
    checkOneOf('dns.scheme', scheme, ['http', 'https'] as const)
    const family = options.family ?? 'any'
    checkOneOf('dns.family', family, [4, 6, 'any'] as const)
    const basePath = options.basePath ?? ''
    if (typeof basePath !== 'string' || (basePath !== '' && !basePath.startsWith('/'))) {
      fail('dns.basePath', 'a path starting with /', basePath)
    }
    const refreshMs = checkNumber('dns.refreshMs', options.refreshMs, 5_000, { integer: true, min: 100 })
    this.#backends = backends
    this.#options = { name: options.name, port, scheme, basePath, refreshMs, family }
    this.#template = options.backend ?? {}
    this.#resolver = options.resolver ?? new dns.Resolver()
    this.#logger = options.logger
  }

  /** Resolves once now (so the first backends exist before the gateway takes traffic), then on the interval. */
  async start(): Promise<void> {
    await this.refresh()
    this.#schedule()
  }

  /** Every address currently registered and not draining, sorted. */
  get addresses(): string[] {
    return [...this.#known]
      .filter(([, draining]) => !draining)
      .map(([address]) => address)
      .sort()
  }

  idOf(address: string): string {
    return `${this.#options.name}:${this.#options.port}/${address}`
  }

  /** Resolves the name once and applies the difference. Never throws. */
  async refresh(): Promise<void> {
    const found = await this.#resolve()
    if (found === undefined || this.#closed) return
    for (const address of found) {
      const draining = this.#known.get(address)
      if (draining === undefined) this.#add(address)
      else if (draining) {
        this.#known.set(address, false)
        this.#backends.undrain(this.idOf(address))
      }
    }
    for (const [address, draining] of this.#known) {
      if (!draining && !found.has(address)) this.#drain(address)
    }
  }

  /** Stops re-resolving; the backends found so far stay registered. */
  close(): void {
    this.#closed = true
    clearTimeout(this.#timer)
  }

  #schedule(): void {
    if (this.#closed) return
    this.#timer = setTimeout(() => {
      void this.refresh().then(() => this.#schedule())
    }, this.#options.refreshMs)
    this.#timer.unref()
  }

  async #resolve(): Promise<Set<string> | undefined> {
    const { name, family } = this.#options
    const lookups: Promise<string[]>[] = []
    if (family !== 6) lookups.push(this.#lookup(() => this.#resolver.resolve4(name)))
    if (family !== 4) lookups.push(this.#lookup(() => this.#resolver.resolve6(name)))
    try {
      const answers = await Promise.all(lookups)
      if (this.#failing) this.#logger?.info?.(`tollgate: DNS discovery of ${name} works again`)
      this.#failing = false
      return new Set(answers.flat())
    } catch (error) {
      if (!this.#failing) {
        const code = (error as NodeJS.ErrnoException).code ?? (error as Error).message
        this.#logger?.warn(
          `tollgate: DNS discovery of ${name} failed (${code}); keeping the ${this.#known.size} backends found before`,
        )
      }
      this.#failing = true
      return undefined
    }
  }

  async #lookup(query: () => Promise<string[]>): Promise<string[]> {
    try {
      return await query()
    } catch (error) {
      if (NO_RECORDS.has((error as NodeJS.ErrnoException).code ?? '')) return []
      throw error
    }
  }

  #add(address: string): void {
    const { scheme, port, basePath } = this.#options
    const host = address.includes(':') ? `[${address}]` : address
    try {
      this.#backends.add({
        ...this.#template,
        id: this.idOf(address),
        url: `${scheme}://${host}:${port}${basePath}`,
      })
      this.#known.set(address, false)
    } catch (error) {
      this.#logger?.warn(
        `tollgate: DNS discovery could not add ${this.idOf(address)}: ${(error as Error).message}`,
      )
    }
  }

  #drain(address: string): void {
    const id = this.idOf(address)
    this.#known.set(address, true)
    this.#backends.drain(id).then(
      () => {
        // It may have come back (and been undrained) while its last requests finished.
        if (this.#known.get(address) !== true) return
        this.#known.delete(address)
        this.#backends.remove(id)
      },
      () => this.#known.delete(address),
    )
  }
}
