// The human summary (summary.md) of an evidence package: what is inside, how to verify it, and
// how the contents map to ISO/IEC 27001:2013 and 2022 Annex A controls. Deterministic from the
// manifest and the events, so the verifier can re-derive and compare it.
import type {ExportFilters, PackageAnchor} from './export.js'
import type {SignedTreeHead} from './keys.js'
import type {ReportBuilder} from './reports.js'
import type {RemovalGroup} from './retention.js'

interface SummaryInput {
  createdAt: string
  filters: ExportFilters
  range: {first_seq: number; last_seq: number; events: number; redacted: number} | null
  sth: SignedTreeHead
  fingerprint: string
  reports: ReportBuilder
  treeSize: number
  /** Version 3 packages: the published heads (anchors.jsonl) and the payloads removed. Absent: the summary as versions 1 and 2 wrote it. */
  retention?: {anchors: PackageAnchor[]; removals: RemovalGroup[]}
}

function md(s: string): string {
  return s.replace(/[|\\`*_[\]<>\r\n]/g, (c) => (c === '\r' || c === '\n' ? ' ' : `\\${c}`))
}

/** Anchors, retention and holds: what version 3 adds to the summary. */
function anchorsAndRetention(s: SummaryInput): string {
  const r = s.retention!
  const anchors = r.anchors.length
    ? r.anchors
        .map((a) => {
          const where = a.published.map((p) => `${p.kind} \`${md(p.target)}\` at ${p.at}`).join('; ') || 'recorded in the store'
          const ts = a.timestamp ? `; RFC 3161 timestamp ${a.timestamp.gen_time} by \`${md(a.timestamp.tsa)}\`` : ''
          return `| ${a.tree_head.tree_size} | ${a.tree_head.timestamp} | ${where}${ts} |`
        })
        .join('\n')
    : '| - | - | no head of this log was published outside the store before this export |'
  const expired = r.removals.filter((g) => g.how === 'expired')
  const erased = r.removals.filter((g) => g.how === 'erased')
  const sum = (gs: RemovalGroup[]) => gs.reduce((n, g) => n + g.count, 0)
  const rows = r.removals.length
    ? r.removals
        .map((g) =>
          g.how === 'expired'
            ? `| expired by retention | ${g.at} | ${g.count} (seq ${g.first_seq}..${g.last_seq}) | ${g.by_seq ? `\`audit.retention\` seq ${g.by_seq}` : 'event not in this package'} |`
            : `| erased on request${g.target ? `: ${md(g.scope ?? '')} \`${md(g.target)}\`${g.reason ? `, "${md(g.reason)}"` : ''}` : ''} | ${g.at} | ${g.count} (seq ${g.first_seq}..${g.last_seq}) | ${g.by_seq ? `\`audit.erasure\` seq ${g.by_seq}` : 'event not in this package'} |`,
        )
        .join('\n')
    : '| - | - | 0 | no payload in this package was removed |'
  const holds = s.reports.holds.length
    ? s.reports.holds.map((h) => `| ${h.time} | ${h.action === 'release' ? 'released' : 'placed'} | ${md(h.scope)} \`${md(h.target)}\` | ${md(h.reason)}${h.by ? ` (${md(h.by)})` : ''} | seq ${h.seq} |`).join('\n')
    : ''
  return `
## Anchors: where the log's signed heads were published

Each head below was published outside the store when it was signed (witness file, sinks, RFC 3161
timestamp authority); \`anchors.jsonl\` holds them with their timestamp tokens and
\`proofs/consistency.jsonl\` proves this package consistent with each.

| tree size | signed | published |
|---|---|---|
${anchors}

## Retention applied

Events commit to their payload (statement text, justifications, error messages) by its SHA-256,
so a payload removed by retention or on request leaves every hash, proof and signature intact.
In this package: ${s.reports.counts.statement ?? 0} statement(s); payloads expired by retention: ${sum(expired)}; erased on request: ${sum(erased)}.
A payload missing without such a record fails verification.

| removal | when | payloads (events) | recorded by |
|---|---|---|---|
${rows}
${holds ? `\nLegal holds (payloads they cover do not expire):\n\n| when | hold | on | reason | event |\n|---|---|---|---|---|\n${holds}\n` : '\nNo legal hold was placed or released in the events of this package.\n'}`
}

export function isoMappingMarkdown(s: SummaryInput): string {
  const r = s.reports
  const count = (k: string) => r.counts[k] ?? 0
  const f = s.filters
  const scope = [
    f.from ? `from ${f.from}` : 'from the first event',
    f.to ? `to ${f.to}` : 'to the latest event',
    f.connection ? `connection \`${f.connection}\`` : 'all connections',
    f.user ? `user \`${f.user}\`` : 'all users',
  ].join(', ')
  const decisions = Object.entries(r.decisions).sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, v]) => `${k}: ${v}`).join(', ') || 'none'
  return `# hoop audit evidence package

Created ${s.createdAt}. Scope: ${scope}.

${s.range ? `Events seq ${s.range.first_seq} to ${s.range.last_seq}: ${s.range.events} included in full, ${s.range.redacted} outside the filter included as Merkle leaf hashes only (so the range is complete).` : 'No events in the requested range.'}
Signed tree head: size ${s.sth.tree_size}, root \`${s.sth.root_hash}\`, signed ${s.sth.timestamp}.
Signing key (Ed25519) fingerprint, SHA-256 of the SubjectPublicKeyInfo: \`${s.fingerprint}\`.

| content | count |
|---|---|
| sessions | ${r.sessions.size} |
| statements (decisions: ${decisions}) | ${count('statement')} |
| approval events | ${r.approvals.rows} |
| masking rows (fields redacted) | ${r.masking.rows} |
| authentication failures | ${count('auth.failure')} |
| policy reloads | ${count('policy.reload')} |
| administrative changes | ${count('admin.change')} |
${s.retention ? anchorsAndRetention(s) : ''}
## How to verify

1. Obtain the gateway's public key independently (\`hoop audit key\` on the gateway host, or the
   gateway's key endpoint) and compare its fingerprint with the one above.
2. Run \`hoop audit verify PACKAGE --public-key KEY.pem\`. It needs nothing but the file and the key.
   It checks every file against \`manifest.json\` (SHA-256) and the manifest signature, the signature
   of \`tree-head.json\`, every event's hash-chain link (each event carries the SHA-256 of its
   predecessor), that the events of the range rebuild the signed Merkle root (RFC 6962, via
   \`proofs/range.json\`), that every earlier checkpoint is consistent with the signed tree head
   (\`proofs/consistency.jsonl\`), and that the reports are exactly what the events say.
   It exits 0 only when everything holds, and otherwise names the first bad record.
3. Keep \`tree-head.json\`: the next package can be checked against it with \`--previous\`, proving
   that nothing already exported was changed or removed since (append-only log).

## Files

| file | content |
|---|---|
| \`events.jsonl\` | the raw events as signed: canonical JSON (RFC 8785), one per line |
| \`tree-head.json\` | the signed tree head (size, root, chain head, time, Ed25519 signature) |
| \`checkpoints.jsonl\`, \`proofs/consistency.jsonl\` | earlier signed tree heads and consistency proofs to this one |
| \`proofs/range.json\` | the Merkle nodes that, with the range's leaves, rebuild the signed root |
| \`keys/audit-public.pem\`, \`keys/fingerprint.txt\` | the public key and its fingerprint |
| \`reports/session-log.{jsonl,csv}\` | chronological session log: caller, target, command, decision, rule, time |
| \`reports/approvals.{jsonl,csv}\` | approval audit: request, approver, decision, justification, timestamps |
| \`reports/masking.{jsonl,csv}\` | masking report: fields and entity types redacted per session and statement |
| \`manifest.json\`, \`manifest.sig\` | SHA-256 of every file; Ed25519 signature of the manifest |

## ISO/IEC 27001 mapping

| control (2013) | control (2022) | evidence in this package |
|---|---|---|
| A.9.2 User access management (A.9.2.1-A.9.2.6) | A.5.15 Access control | session log: every session and statement with the verified identity, groups, the decision and the policy rule id; \`admin.change\` events for agents and service accounts issued and revoked |
| A.9.2.3 Management of privileged access rights | A.8.2 Privileged access rights | approval audit: just-in-time access and statement reviews with requester, approver, justification and timestamps (${r.approvals.rows} rows) |
| A.12.4.1 Event logging | A.8.15 Logging | \`events.jsonl\` and the session log: session start/end, statements, results, authentication failures (${count('auth.failure')}) |
| A.12.4.2 Protection of log information | A.8.15 Logging | hash chain, RFC 6962 Merkle tree, Ed25519-signed tree heads, consistency proofs, signed manifest; verifiable offline |
| A.12.4.3 Administrator and operator logs | A.8.15 Logging | \`admin.change\` (${count('admin.change')}) and \`policy.reload\` (${count('policy.reload')}) events |
| A.14.2.5 Secure system engineering principles | A.8.11 Data masking | masking report: columns and detected entity types redacted before results left the gateway (${r.masking.rows} rows); policy as code with deny by default, each decision naming its rule |
| A.12.4.1 Event logging | A.8.16 Monitoring activities | blocked and reviewed statements, authentication failures, decisions per rule; events also streamed to the SIEM sinks |
${s.retention ? `| A.18.1.3 Protection of records | A.8.10 Information deletion | retention applied: payloads expired by policy and erased on request, each removal recorded by an \`audit.retention\` / \`audit.erasure\` event and checked by verify; legal holds (\`audit.hold\`); hashes kept, so the proofs still hold |
| A.12.4.2 Protection of log information | A.8.15 Logging | anchors: the signed heads published outside the store and their times (above) |
` : ''}`
}
