// The PostgreSQL engine's modules for the in-process CPU tools (engine-cpu.ts, engine-copy-cpu.ts),
// loaded from the checkout given on their command line rather than this one, so that two builds can
// be compared side by side with the same tool. Only modules whose API every compared build shares.

/** The bench's service identity, which the tools' policies allow on connection `pg`. */
export const BENCH_IDENTITY = {kind: 'service-account', subject: 'sa-bench', name: 'bench', groups: ['bench']}

/** `root`'s engine, with its SQL parser loaded, and a policy of the bench's access rule plus `rules` (YAML list items). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- modules of another checkout, untyped here
export async function engineAt(root: string): Promise<{src: (path: string) => Promise<any>; gate: any; runPgSession: any; silentLogger: any; policy: (rules: string, name: string) => any}> {
  const src = (path: string) => import(`${root}/src/${path}`)
  const gate = await src('engines/gate.ts')
  const {runPgSession} = await src('engines/postgres/session.ts')
  const {parsePolicy} = await src('policy/load.ts')
  const {silentLogger} = await src('shared/log.ts')
  await (await src('sql/pg-parser.ts')).loadPgParser()
  const policy = (rules: string, name: string) =>
    parsePolicy(`version: 1\nrules:\n  - {id: bench-access, subjects: {groups: [bench]}, connections: [pg], effect: allow}\n${rules}`, name)
  return {src, gate, runPgSession, silentLogger, policy}
}
