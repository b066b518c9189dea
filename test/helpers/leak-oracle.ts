// The masking oracle for adversarial tests: search every byte a server sent for a secret value and
// simple transforms of it, never trusting an error text. A hit names the transform and the offset,
// so a failing test says how the value got out.

export interface Leak {
  transform: string
  needle: string
  offset: number
}

/** The forms of `secret` an attacker could make the server echo with a built-in function. */
export function leakForms(secret: string): Record<string, string> {
  const at = secret.indexOf('@')
  const forms: Record<string, string> = {
    raw: secret,
    upper: secret.toUpperCase(),
    lower: secret.toLowerCase(),
    reversed: [...secret].reverse().join(''),
    base64: Buffer.from(secret).toString('base64').replace(/=+$/, ''),
    hex: Buffer.from(secret).toString('hex'),
    hexUpper: Buffer.from(secret).toString('hex').toUpperCase(),
    // ascii()/unicode code points joined, as `string_agg(ascii(c)::text, ',')` would print them
    charCodes: [...secret].map((c) => c.codePointAt(0)).join(','),
  }
  if (at > 0) forms.localPart = secret.slice(0, at)
  return forms
}

/** Every occurrence of any form of any secret in `bytes` (latin1, so binary results are searched too). */
export function findLeaks(bytes: Buffer, secrets: readonly string[]): Leak[] {
  const text = bytes.toString('latin1')
  const leaks: Leak[] = []
  for (const secret of secrets) {
    for (const [transform, needle] of Object.entries(leakForms(secret))) {
      // Very short forms (a 3-letter local part) would match by chance; the raw value covers them.
      if (needle.length < 5) continue
      const needleLatin1 = Buffer.from(needle, 'utf8').toString('latin1')
      let from = 0
      for (;;) {
        const i = text.indexOf(needleLatin1, from)
        if (i < 0) break
        leaks.push({transform, needle, offset: i})
        from = i + 1
      }
    }
  }
  return leaks
}
