// Hints that lead somewhere. An error code's own hint (src/shared/errors.ts) is the same for every
// case, and for credentials that was "run `hoop login`" even when that could not help: a revoked
// service-account key, a stored login from an issuer the gateway no longer trusts (dev mode
// replaced by a production config on the same URL), a gateway with no login issuer at all. This
// file knows which credential the command presented (credentials.ts notes it) and, when it helps,
// asks the gateway's public settings, then names the command that fixes the situation.
import {fetchGatewaySettings} from '../identity/oidc-client.js'
import type {HoopError} from '../shared/errors.js'

/** What the command presented to which gateway; `none` when nothing could be found. */
export interface CredentialContext {
  gateway: string
  source: 'token' | 'client-credentials' | 'ci-token' | 'login' | 'none'
  /** The issuer of the stored login, for `login`. */
  issuer?: string
}

let presented: CredentialContext | undefined

export function noteCredential(c: CredentialContext): void {
  presented = c
}

/** The HOOP_PROFILE in use, if any: it names the stored login, so fixes must name it too. */
export function currentProfile(env: NodeJS.ProcessEnv = process.env): string | undefined {
  return env.HOOP_PROFILE?.trim() || undefined
}

/** A command as the user must type it: `HOOP_PROFILE=x hoop login --gateway URL`. */
export function commandFor(args: string, env: NodeJS.ProcessEnv = process.env): string {
  const profile = currentProfile(env)
  return `${profile ? `HOOP_PROFILE=${/^[\w.-]+$/.test(profile) ? profile : `'${profile.replace(/'/g, `'\\''`)}'`} ` : ''}hoop ${args}`
}

/** The hint to print for `err`: its own (details.hint), one that fits the credential, or undefined for the code's default. */
export async function hintFor(err: HoopError): Promise<string | undefined> {
  const own = err.details?.hint
  if (typeof own === 'string') return own
  if (!presented || (err.code !== 'TOKEN_REJECTED' && err.code !== 'NOT_LOGGED_IN')) return undefined
  const {gateway, source, issuer} = presented
  if (source === 'token') {
    return /revoked/.test(err.message)
      ? 'HOOP_TOKEN (or --token) is a revoked service-account key: ask an admin for a new key (`hoop admin service-accounts create` on the gateway host) and set HOOP_TOKEN to it, or unset HOOP_TOKEN to use your own `hoop login`'
      : 'the gateway does not accept the key in HOOP_TOKEN (or --token): check it, ask an admin for a new one, or unset HOOP_TOKEN to use your own `hoop login`'
  }
  if (source !== 'login' && source !== 'none') return undefined
  const login = `\`${commandFor(`login --gateway ${gateway}`)}\``
  let current: string | undefined
  try {
    current = (await fetchGatewaySettings(gateway)).issuer
  } catch {
    return undefined
  }
  if (source === 'none') {
    return current
      ? `run ${login}, or set HOOP_TOKEN to a service-account key`
      : `${gateway} has no login issuer (its config sets no auth.oidc), so \`hoop login\` cannot help: set HOOP_TOKEN to a service-account key, or ask the gateway's admin to configure auth.oidc (docs/configuration.md)`
  }
  if (err.code === 'TOKEN_REJECTED' && issuer && current !== issuer) {
    const logout = `\`${commandFor(`logout --gateway ${gateway}`)}\``
    return current
      ? `your stored login for ${gateway} was issued by ${issuer}; the gateway now trusts ${current}: run ${login} to replace it`
      : `your stored login for ${gateway} was issued by ${issuer} (a dev-mode gateway on the same URL?), which the gateway no longer trusts, and it has no login issuer now: remove the stale login with ${logout}, then set HOOP_TOKEN to a service-account key, or ask the gateway's admin to configure auth.oidc (docs/configuration.md)`
  }
  return current ? `run ${login} to sign in again` : undefined
}
