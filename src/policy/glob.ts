// Globs and durations as written in policy files. Globs are deliberately small: `*` is any run of
// characters, `?` one character, everything else is literal (no classes, no braces), compared
// case-insensitively, so that a pattern means the same thing to every reader.

const cache = new Map<string, RegExp>()

/** Why a glob is not acceptable, or undefined when it is. */
export function globProblem(pattern: string, spaces = false): string | undefined {
  if (pattern.trim().length === 0) return 'must not be empty'
  if (spaces ? /^\s|\s$|\s\s|[\t\n\r]/.test(pattern) : /\s/.test(pattern)) {
    return spaces ? 'may only separate words with single spaces' : 'must not contain spaces'
  }
  if (/[[\]{}]/.test(pattern)) return 'may only use * and ? as wildcards ([...] and {...} are not supported)'
  if (pattern.length > 256) return 'is longer than 256 characters'
  return undefined
}

export function globMatch(pattern: string, value: string): boolean {
  let re = cache.get(pattern)
  if (!re) {
    const body = pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')
    re = new RegExp(`^${body}$`, 'is')
    if (cache.size > 10_000) cache.clear()
    cache.set(pattern, re)
  }
  return re.test(value)
}

export function anyGlob(patterns: readonly string[], value: string): boolean {
  return patterns.some((p) => globMatch(p, value))
}

const UNIT_SECONDS: Record<string, number> = {s: 1, m: 60, h: 3600, d: 86400}

/** "90s", "15m", "8h", "1h30m", "2d" -> seconds; undefined when malformed or zero. */
export function parseDuration(text: string): number | undefined {
  const s = text.trim()
  if (!/^(\d+[smhd])+$/.test(s)) return undefined
  let total = 0
  for (const m of s.matchAll(/(\d+)([smhd])/g)) total += Number(m[1]) * UNIT_SECONDS[m[2]]
  return total > 0 && Number.isSafeInteger(total) ? total : undefined
}

export function formatDuration(seconds: number): string {
  const parts: string[] = []
  let rest = seconds
  for (const [unit, size] of [['d', 86400], ['h', 3600], ['m', 60], ['s', 1]] as const) {
    if (rest >= size) {
      parts.push(`${Math.floor(rest / size)}${unit}`)
      rest %= size
    }
  }
  return parts.join('') || '0s'
}
