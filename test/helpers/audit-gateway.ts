// The gateway config the audit end-to-end tests share: one PostgreSQL connection "db" on the local
// server, writable by the group eng, and an optional audit section.
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
