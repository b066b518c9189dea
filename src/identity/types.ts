// Who is calling. Every stream and admin call carries one of these, verified by the gateway.

type IdentityKind =
  | 'user' // a person, from the organisation's OpenID Provider
  | 'service-account' // a gateway-issued key (HOOP_TOKEN)
  | 'client' // OAuth client credentials
  | 'ci' // a CI workload identity (an external issuer's ID token mapped by claims)
  | 'agent' // a connector serving targets

export interface Identity {
  kind: IdentityKind
  /** Stable id: the JWT `sub`, or the service account / agent name. */
  subject: string
  /** Human-readable name for logs and audit (email, account name, CI rule id). */
  name: string
  email?: string
  groups: string[]
  issuer?: string
  /** Seconds since epoch, when the credential stops being valid. */
  expiresAt?: number
  /** Claims a policy may match (e.g. CI repository, ref, workflow). Never secrets. */
  claims?: Record<string, string>
}

/** Turns a bearer credential into a verified identity, or throws HoopError TOKEN_REJECTED. */
export interface Authenticator {
  authenticate(bearer: string): Promise<Identity>
}
