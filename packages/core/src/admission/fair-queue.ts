import { STILL_FULL } from '../balance/concurrency-queue.js'
import { BalancerError } from '../balance/errors.js'
import {
  type FairWaiter,
  giveBack,
  insertByStart,
  type Level,
  levelOf,
  moveTo,
  pushOutCandidate,
} from './levels.js'
import { PriorityCounts, type PriorityQueueSnapshot } from './priority-counts.js'
import type { RequestClass, RequestClassifier, WaitSubject } from './request-class.js'
import { type TenantQueueSnapshot, type TenantRecord, TenantTable } from './tenant-table.js'
import type { WaitQueue } from './wait-queue.js'

/** The fair queue's state in `BackendsHandle.queue()`. */
export interface FairQueueSnapshot {
  waiting: number
  tenants: TenantQueueSnapshot[]
  /** With `fairness`, per priority level: waiting now, and served, shed, timed out since start. */
  priorities: PriorityQueueSnapshot[]
}

export interface FairQueueOptions {
  size: number
  timeoutMs: number
  retryAfterMs: number
  maxWaitingPerTenant: number
  maxTenants: number
  idleMs: number
  now: () => number
}

/**
 * Where requests wait when every backend is full, with `fairness` on. Strict priority between
 * classes; within one class, start-time fair queuing between tenants: a request's start tag is
 * max(the class's virtual time, its tenant's previous finish tag) and its finish tag adds
 * cost / weight, and the smallest start tag is served first. While saturated each waiting tenant
 * gets its weight's part of the slots. A tenant that was idle starts at the current virtual time:
 * it is served at once at its share, with neither a debt nor a credit from the idle time.
 *
 * A tenant not served before queues in one shared class, the newcomers, until a request of it is
 * served: its waiting requests then move to a share of their own. So ids minted per request add up
 * to one tenant, for slots and for places in a full queue alike.
 *
 * Requests below priority 0 are sheddable: they wait at most half their allowed time, and once a
 * higher one has waited half of its own they are turned away (503, Retry-After), new ones too
 * until that pressure ends; a full
 * queue pushes out the newest of the lowest class, or of the tenant with the most waiting, before
 * it turns a request away. The backend is chosen when a request leaves the queue (late binding).
 */
export class FairQueue<T> implements WaitQueue<T> {
  readonly #options: FairQueueOptions
  readonly #classifier: RequestClassifier
  readonly #tenants: TenantTable
  readonly #outcomes = new PriorityCounts()
  /** Highest priority first. */
  #levels: Level<T>[] = []
  #length = 0
  #pressing = 0
  #sheddable = 0
  #seq = 0
  #waking = false
  /** Ids of newcomers served in the current wake, established once it ends. */
  readonly #served: string[] = []
  readonly #weight = (name: string) => this.#classifier.weight(name)

  constructor(options: FairQueueOptions, classifier: RequestClassifier) {
    this.#options = options
    this.#classifier = classifier
    this.#tenants = new TenantTable(options.maxTenants, options.idleMs, (record) => {
      for (const level of this.#levels) level.finish.delete(record)
    })
  }

  get length(): number {
    return this.#length
  }

  enqueue(
    attempt: () => T | typeof STILL_FULL,
    signal?: AbortSignal,
    leave?: () => void,
    subject: WaitSubject = {},
  ): Promise<T> {
    const c = this.#classifier.classify(subject)
    if (c.waitMs === 0) {
      this.#outcomes.count(c.priority, 'timedOut')
      throw this.#error(`The request's deadline left no time to wait for a backend`, 'queue_timeout')
    }
    if (c.priority < 0 && this.#pressing > 0) {
      this.#outcomes.count(c.priority, 'shed')
      throw this.#error(
        'Every backend is busy with higher-priority requests; sheddable ones are turned away',
        'shed',
      )
    }
    const named = this.#classifier.named(c.tenant)
    this.#makeRoom(this.#tenants.activate(c.tenant, named, this.#weight), c)
    // Pushing out the tenant's own request may have quietened it: take it up again.
    const tenant = this.#tenants.activate(c.tenant, named, this.#weight)
    const level = levelOf(this.#levels, c.priority)
    const start = Math.max(level.virtualTime, level.finish.get(tenant) ?? 0)
    const finish = start + c.cost / tenant.weight
    level.finish.set(tenant, finish)
    return new Promise<T>((resolve, reject) => {
      const waiter: FairWaiter<T> = {
        attempt,
        resolve,
        reject,
        leave,
        signal,
        onAbort: undefined,
        timer: undefined,
        tenant,
        id: c.tenant,
        level,
        cost: c.cost,
        start,
        finish,
        seq: this.#seq++,
        waitMs: c.waitMs,
        pressing: false,
      }
      insertByStart(level, waiter)
      tenant.waiting++
      this.#length++
      if (c.priority < 0) {
        this.#sheddable++
        waiter.timer = setTimeout(() => this.#shed(waiter), c.waitMs / 2)
      } else {
        waiter.timer = setTimeout(() => this.#pressed(waiter), c.waitMs / 2)
      }
      waiter.timer.unref()
      if (signal) {
        waiter.onAbort = () => {
          this.#remove(waiter)
          reject(signal.reason)
        }
        signal.addEventListener('abort', waiter.onAbort, { once: true })
      }
    })
  }

  wake(): void {
    if (this.#waking || this.#length === 0) return
    this.#waking = true
    try {
      for (let l = 0; l < this.#levels.length; l++) {
        const level = this.#levels[l] as Level<T>
        for (let i = 0; i < level.waiters.length; ) {
          const waiter = level.waiters[i] as FairWaiter<T>
          let result: T | typeof STILL_FULL
          try {
            result = waiter.attempt()
          } catch (error) {
            this.#remove(waiter)
            waiter.reject(error)
            continue
          }
          if (result === STILL_FULL) {
            i++
            continue
          }
          if (waiter.start > level.virtualTime) level.virtualTime = waiter.start
          waiter.tenant.served++
          waiter.tenant.servedCost += waiter.cost
          this.#outcomes.count(level.priority, 'served')
          if (waiter.tenant === this.#tenants.newcomers) this.#served.push(waiter.id)
          this.#remove(waiter, true)
          waiter.resolve(result)
        }
        // A level emptied (and removed) above shifts the ones after it down by one.
        if (this.#levels[l] !== level) l--
      }
      // After the pass, so moving waiters cannot make it skip one.
      while (this.#served.length > 0) this.#establish(this.#served.pop() as string)
    } finally {
      this.#waking = false
    }
  }

  /** Gives tenant `id` its own record, and moves its requests waiting with the newcomers there. */
  #establish(id: string): void {
    const newcomers = this.#tenants.newcomers
    const record = this.#tenants.establish(id, this.#weight)
    for (const level of this.#levels) {
      const moving = level.waiters.filter((w) => w.tenant === newcomers && w.id === id)
      for (const waiter of moving) moveTo(level, waiter, record)
    }
    this.#quietenIfIdle(record)
  }

  rejectAll(error: unknown): void {
    for (const level of [...this.#levels]) {
      for (const waiter of [...level.waiters]) {
        this.#remove(waiter)
        waiter.reject(error)
      }
    }
  }

  snapshot(): FairQueueSnapshot {
    return {
      waiting: this.#length,
      tenants: this.#tenants.snapshot(this.#options.now()),
      priorities: this.#outcomes.snapshot(this.#levels),
    }
  }

  /** Frees a place for a request of `tenant` at `c.priority`, or throws when none may be taken. */
  #makeRoom(tenant: TenantRecord, c: RequestClass): void {
    const o = this.#options
    if (tenant.waiting >= o.maxWaitingPerTenant) {
      const victim = pushOutCandidate(this.#levels, c.priority, tenant, undefined)
      if (victim === undefined) {
        this.#quietenIfIdle(tenant)
        this.#outcomes.count(c.priority, 'full')
        throw this.#error(
          tenant === this.#tenants.newcomers
            ? `Tenants not served before share ${o.maxWaitingPerTenant} places in the wait queue, all taken`
            : `This tenant already has ${o.maxWaitingPerTenant} requests waiting for a backend`,
          'tenant_queue_full',
        )
      }
      this.#evict(victim, 'tenant_queue_full')
    }
    if (this.#length >= o.size) {
      const victim = pushOutCandidate(this.#levels, c.priority, undefined, tenant, this.#tenants.newcomers)
      if (victim === undefined) {
        this.#quietenIfIdle(tenant)
        this.#outcomes.count(c.priority, 'full')
        throw this.#error(
          'Every backend is at its concurrency limit and the wait queue is full',
          'queue_full',
        )
      }
      this.#evict(victim, 'queue_full')
    }
  }

  #evict(waiter: FairWaiter<T>, code: 'queue_full' | 'tenant_queue_full'): void {
    this.#outcomes.count(waiter.level.priority, 'full')
    this.#remove(waiter)
    waiter.reject(
      this.#error(
        'A request of a higher priority or a smaller tenant took this place in the wait queue',
        code,
      ),
    )
  }

  #pressed(waiter: FairWaiter<T>): void {
    waiter.pressing = true
    this.#pressing++
    if (this.#sheddable > 0) this.#shedAll()
    waiter.timer = setTimeout(() => this.#timedOut(waiter), waiter.waitMs - waiter.waitMs / 2)
    waiter.timer.unref()
  }

  #shedAll(): void {
    for (const level of [...this.#levels]) {
      if (level.priority >= 0) continue
      for (const waiter of [...level.waiters]) this.#shed(waiter)
    }
  }

  #shed(waiter: FairWaiter<T>): void {
    this.#outcomes.count(waiter.level.priority, 'shed')
    this.#remove(waiter)
    waiter.reject(this.#error('Every backend is busy; this sheddable request was turned away', 'shed'))
  }

  #timedOut(waiter: FairWaiter<T>): void {
    this.#outcomes.count(waiter.level.priority, 'timedOut')
    this.#remove(waiter)
    waiter.reject(this.#error(`No backend became free within ${waiter.waitMs} ms`, 'queue_timeout'))
  }

  #error(
    message: string,
    code: 'queue_full' | 'tenant_queue_full' | 'queue_timeout' | 'shed',
  ): BalancerError {
    return new BalancerError(message, 503, code, this.#options.retryAfterMs)
  }

  #remove(waiter: FairWaiter<T>, served = false): void {
    const level = waiter.level
    const i = level.waiters.indexOf(waiter)
    if (i === -1) return
    level.waiters.splice(i, 1)
    clearTimeout(waiter.timer)
    if (waiter.onAbort) waiter.signal?.removeEventListener('abort', waiter.onAbort)
    this.#length--
    if (waiter.pressing) this.#pressing--
    if (level.priority < 0) this.#sheddable--
    if (!served) giveBack(level, waiter)
    if (level.waiters.length === 0) this.#levels.splice(this.#levels.indexOf(level), 1)
    waiter.tenant.waiting--
    this.#quietenIfIdle(waiter.tenant)
    waiter.leave?.()
  }

  #quietenIfIdle(tenant: TenantRecord): void {
    if (tenant.waiting === 0) this.#tenants.quieten(tenant, this.#options.now())
  }
}
