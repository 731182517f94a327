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
  tenant: string
  weight: number
  waiting: number
  served: number
  /** This tenant's part of the cost served from the queue to every tenant listed, 0 to 1. */
  servedShare: number
}

/**
 * The tenants of the fair queue. Tenant ids come from clients, so the table is bounded: tenants
 * with requests waiting are at most the queue's size, and tenants gone quiet are kept (for the
 * snapshot's served share) at most `maxTenants` of them and at most `idleMs` long, oldest
 * forgotten first. A forgotten tenant that returns starts afresh, which is what fair queuing
 * gives a returning tenant anyway.
 */
export class TenantTable {
  readonly #active = new Map<string, TenantRecord>()
  // Insertion order is the order tenants went quiet, so the oldest is always first.
  readonly #quiet = new Map<string, TenantRecord>()
  readonly #maxTenants: number
  readonly #idleMs: number
  readonly #onForget: (record: TenantRecord) => void

  constructor(maxTenants: number, idleMs: number, onForget: (record: TenantRecord) => void) {
    this.#maxTenants = maxTenants
    this.#idleMs = idleMs
    this.#onForget = onForget
  }

  /** The tenant's record, made active; `weight` is asked only for a tenant not known yet. */
  activate(name: string, weight: (name: string) => number): TenantRecord {
    let record = this.#active.get(name)
    if (record !== undefined) return record
    record = this.#quiet.get(name)
    if (record !== undefined) this.#quiet.delete(name)
    else record = { name, weight: weight(name), waiting: 0, served: 0, servedCost: 0, quietSince: 0 }
    this.#active.set(name, record)
    return record
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
    let total = 0
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
    return rows
  }
}
