// The gateway config the audit end-to-end tests share: one PostgreSQL connection "db" on the local
// server, writable by the group eng, and an optional audit section; and the kill -9 experiment.
import pg from 'pg'
import {sh} from './net.js'

export function pgWriterConfig(audit?: string): string {
  return `${audit ? `audit: ${audit}\n` : ''}connections:
  - name: db
    type: postgres
    target: 127.0.0.1:5432
    database: test
    username: postgres
policy:
  version: 1
  rules:
    - {id: writers, subjects: {groups: [eng]}, connections: [db], effect: allow}
`
}

/**
 * The kill -9 experiment of the audit-crash tests: `clients` node-postgres sessions through
 * `hoop connect` on `port` insert 0, 1, 2... into `table` until `before` inserts were acknowledged,
 * then the gateway is killed. Returns the numbers acknowledged and those the database executed.
 */
export async function insertUntilKilled(o: {
  port: number
  table: string
  clients: number
  before: number
  gateway: {proc: {child: {kill(signal: NodeJS.Signals): unknown}; exited: Promise<unknown>}}
  connect: {stop(): Promise<unknown>}
}): Promise<{acked: Set<number>; executed: number[]}> {
  const acked = new Set<number>()
  let next = 0
  let stop = false
  const clients = await Promise.all(
    Array.from({length: o.clients}, async () => {
      const c = new pg.Client({host: '127.0.0.1', port: o.port, user: 'postgres', database: 'test'})
      c.on('error', () => {})
      await c.connect()
      return c
    }),
  )
  const loops = clients.map((c) =>
    (async () => {
      while (!stop) {
        const n = next++
        await c.query(`INSERT INTO ${o.table} VALUES (${n})`)
        acked.add(n)
      }
    })().catch(() => {}),
  )
  while (acked.size < o.before) await new Promise((r) => setTimeout(r, 20))
  o.gateway.proc.child.kill('SIGKILL')
  await o.gateway.proc.exited
  stop = true
  await Promise.all(loops)
  await o.connect.stop()
  const ran = await sh(`psql -X -A -t -h 127.0.0.1 -U postgres test -c "SELECT n FROM ${o.table} ORDER BY n"`)
  return {acked, executed: ran.stdout.trim().split('\n').filter(Boolean).map(Number)}
}
