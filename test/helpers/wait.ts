// Waiting for a state another process reaches, with a generous bound (never a timing claim).

/** Polls `check` every 200 ms until it gives a value, or fails after `ms` naming `what`. */
export async function eventually<T>(what: string, ms: number, check: () => Promise<T | undefined>): Promise<T> {
  const until = Date.now() + ms
  for (;;) {
    const v = await check()
    if (v !== undefined) return v
    if (Date.now() > until) throw new Error(`not within ${ms} ms: ${what}`)
    await new Promise((r) => setTimeout(r, 200))
  }
}
