import { randomUUID } from 'node:crypto'
import type { FlexibleLimiterFactory } from '@tollgate/core'
import mysql from 'mysql2'
import pg from 'pg'
import { RateLimiterMySQL, RateLimiterPostgres } from 'rate-limiter-flexible'

export const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test'
export const MYSQL_URL = process.env.MYSQL_URL ?? 'mysql://root@127.0.0.1:3306/test'

/** One database as the tests use it: a pool (optionally through a proxy port), a factory, a reader. */
export interface Database {
  readonly name: string
  readonly url: URL
  /** A pool on `port` (default the database's own), and the factory of limiters on it. */
  connect(port?: number): Connection
}

export interface Connection {
  readonly factory: FlexibleLimiterFactory
  /** The points stored for keys containing `part`, in table `table`. */
  points(table: string, part: string): Promise<number[]>
  drop(table: string): Promise<void>
  end(): Promise<void>
}

export function uniqueTable(): string {
  return `tollgate_${randomUUID().replaceAll('-', '').slice(0, 12)}`
}

export const postgres: Database = {
  name: 'PostgreSQL',
  url: new URL(DATABASE_URL),
  connect(port) {
    const url = new URL(DATABASE_URL)
    if (port !== undefined) url.port = String(port)
    const pool = new pg.Pool({ connectionString: url.href, connectionTimeoutMillis: 500, max: 4 })
    // A connection cut under an idle client is reported here; without a listener pg would throw.
    pool.on('error', () => {})
    return {
      factory: (opts, ready) => new RateLimiterPostgres({ storeClient: pool, ...opts }, ready),
      async points(table, part) {
        const r = await pool.query(`SELECT points FROM "${table}" WHERE key LIKE $1 ORDER BY key`, [
          `%${part}%`,
        ])
        return r.rows.map((row: { points: number }) => Number(row.points))
      },
      async drop(table) {
        await pool.query(`DROP TABLE IF EXISTS "${table}"`)
      },
      end: () => pool.end(),
    }
  },
}

export const mariadb: Database = {
  name: 'MariaDB',
  url: new URL(MYSQL_URL),
  connect(port) {
    const url = new URL(MYSQL_URL)
    const database = url.pathname.slice(1) || 'test'
    const pool = mysql.createPool({
      host: url.hostname,
      port: port ?? Number(url.port || 3306),
      user: decodeURIComponent(url.username || 'root'),
      password: decodeURIComponent(url.password),
      database,
      connectTimeout: 500,
      connectionLimit: 4,
    })
    pool.on('error', () => {})
    const query = (sql: string, values: unknown[] = []) =>
      new Promise<unknown[]>((resolve, reject) =>
        pool.query(sql, values, (error, rows) => (error ? reject(error) : resolve(rows as unknown[]))),
      )
    return {
      factory: (opts, ready) => new RateLimiterMySQL({ storeClient: pool, dbName: database, ...opts }, ready),
      async points(table, part) {
        const rows = await query(`SELECT points FROM \`${table}\` WHERE \`key\` LIKE ? ORDER BY \`key\``, [
          `%${part}%`,
        ])
        return rows.map((row) => Number((row as { points: number }).points))
      },
      async drop(table) {
        await query(`DROP TABLE IF EXISTS \`${table}\``)
      },
      end: () => new Promise<void>((resolve) => pool.end(() => resolve())),
    }
  },
}
