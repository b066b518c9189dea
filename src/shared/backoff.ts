// Retry delays shared by everything that redials or redelivers (agent links, webhook
// notifications), so they all back off the same documented way.

/** Full-jitter exponential backoff (AWS architecture blog): random in [0, min(max, base * 2^n)], at least base/2. */
export function backoffDelay(attempt: number, minMs: number, maxMs: number, random = Math.random): number {
  const cap = Math.min(maxMs, minMs * 2 ** Math.min(attempt, 20))
  return Math.max(minMs / 2, Math.floor(random() * cap))
}
