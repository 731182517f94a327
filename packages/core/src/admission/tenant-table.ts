/** One tenant the fair queue knows: who is waiting now, or waited recently. */
export interface TenantRecord {
  readonly name: string
  readonly weight: number
  waiting: number
  /** Requests taken from the queue to a backend, and their summed cost. */
  served: number
  servedCost: number
  /** When its last waiting request left the queue (epoch ms); meaningful while quiet. */
  quietSince: number
}

/** Per-tenant state in `BackendsHandle.queue()`. */
export interface TenantQueueSnapshot {
  /** The tenant id; `(new)` on the row of the class that tenants not served before share. */
  tenant: string
  /** Only on the row of tenants not served before, which share one place in the fair queue. */
  newcomers?: true
  weight: number
  waiting: number
  served: number
  /** This tenant's part of the cost served from the queue to every tenant listed, 0 to 1. */
  servedShare: number
}

/** The snapshot's name of the class tenants not served before share. */
const NEWCOMERS = '(new)'

/**
 * The tenants of the fair queue. Tenant ids come from clients, so minting them must buy nothing:
 * a tenant the table does not know yet queues in one shared class, `newcomers`, until one of its
 * requests has been served (or the configuration names it), and only then gets a record and a share
 * of its own. The table is bounded: tenants with requests waiting are at most the queue's size, and
 * tenants gone quiet are kept (as established, and for the snapshot's served share) at most
 * `maxTenants` of them and at most `idleMs` long, oldest forgotten first. A forgotten tenant that
 * returns queues with the newcomers again until served.
 */
export class TenantTable {
  readonly #active = new Map<string, TenantRecord>()
  // Insertion order is the order tenants went quiet, so the oldest is always first.
  readonly #quiet = new Map<string, TenantRecord>()
  readonly #maxTenants: number
  readonly #idleMs: number
  readonly #onForget: (record: TenantRecord) => void
  /** Every tenant not established yet, as one tenant of weight 1; never forgotten. */
  readonly newcomers: TenantRecord = record(NEWCOMERS, 1)

  constructor(maxTenants: number, idleMs: number, onForget: (record: TenantRecord) => void) {
    this.#maxTenants = maxTenants
    this.#idleMs = idleMs
    this.#onForget = onForget
  }

  /**
   * The record a request of `name` queues under, made active: the tenant's own when it is
   * established or `named`, else the newcomers'. `weight` is asked only for a record being made.
   */
  activate(name: string, named: boolean, weight: (name: string) => number): TenantRecord {
    const known = this.#active.get(name)
    if (known !== undefined) return known
    if (named || this.#quiet.has(name)) return this.establish(name, weight)
    return this.newcomers
  }

  /** The tenant's own record, made active (and made, when it has none). */
  establish(name: string, weight: (name: string) => number): TenantRecord {
    let found = this.#active.get(name)
    if (found !== undefined) return found
    found = this.#quiet.get(name)
    if (found !== undefined) this.#quiet.delete(name)
    else found = record(name, weight(name))
    this.#active.set(name, found)
    return found
  }

  /** Call when a tenant's last waiting request has left. */
  quieten(record: TenantRecord, now: number): void {
    if (this.#active.get(record.name) !== record) return
    this.#active.delete(record.name)
    record.quietSince = now
    this.#quiet.set(record.name, record)
    this.sweep(now)
  }

  /** Forgets quiet tenants past `idleMs`, and the oldest beyond `maxTenants`. */
  sweep(now: number): void {
    for (const record of this.#quiet.values()) {
      if (this.#quiet.size <= this.#maxTenants && now - record.quietSince <= this.#idleMs) break
      this.#quiet.delete(record.name)
      this.#onForget(record)
    }
  }

  get size(): number {
    return this.#active.size + this.#quiet.size
  }

  snapshot(now: number): TenantQueueSnapshot[] {
    this.sweep(now)
    const newcomers = this.newcomers
    let total = newcomers.servedCost
    for (const r of this.#active.values()) total += r.servedCost
    for (const r of this.#quiet.values()) total += r.servedCost
    const rows: TenantQueueSnapshot[] = []
    const add = (r: TenantRecord) =>
      rows.push({
        tenant: r.name,
        weight: r.weight,
        waiting: r.waiting,
        served: r.served,
        servedShare: total === 0 ? 0 : r.servedCost / total,
      })
    for (const r of this.#active.values()) add(r)
    for (const r of this.#quiet.values()) add(r)
    if (newcomers.waiting > 0 || newcomers.served > 0) {
      add(newcomers)
      ;(rows[rows.length - 1] as TenantQueueSnapshot).newcomers = true
    }
    return rows
  }
}

function record(name: string, weight: number): TenantRecord {
  return { name, weight, waiting: 0, served: 0, servedCost: 0, quietSince: 0 }
}
