// The gateway's identity runtime: how it authenticates callers, what it publishes about its auth
// settings, and any HTTP routes identity needs (e.g. the dev OpenID Provider).
import type {IncomingMessage, ServerResponse} from 'node:http'
import type {GatewayConfig} from '../shared/config.js'
import type {Logger} from '../shared/log.js'
import type {Store} from '../store/types.js'
import {authenticateServiceKey, looksLikeServiceKey} from './service-keys.js'
import {HoopError} from '../shared/errors.js'
import type {Authenticator, Identity} from './types.js'

export interface IdentityRuntimeOptions {
  config: GatewayConfig
  store: Store
  logger: Logger
  /** The gateway's own base URL, e.g. http://127.0.0.1:8009. */
  publicUrl: string
  dev: boolean
}

/** Public auth settings served at /.well-known/hoop-configuration. */
export interface PublicAuthSettings {
  issuer?: string
  clientId?: string
  audience?: string
  scopes?: string[]
}

export interface IdentityRuntime {
  /** Authenticates people, service accounts, client-credential and CI tokens (not agents). */
  authenticator: Authenticator
  publicSettings(): PublicAuthSettings
  /** Handles identity HTTP routes; resolves true when it answered the request. */
  handleHttp(req: IncomingMessage, res: ServerResponse): Promise<boolean>
  close(): Promise<void>
}

export async function createIdentityRuntime(opts: IdentityRuntimeOptions): Promise<IdentityRuntime> {
  const authenticator: Authenticator = {
    async authenticate(bearer: string): Promise<Identity> {
      if (looksLikeServiceKey(bearer)) return authenticateServiceKey(opts.store, bearer, 'sa')
      throw new HoopError('TOKEN_REJECTED', 'token is not a service-account key and no OIDC issuer is configured')
    },
  }
  return {
    authenticator,
    publicSettings: () => ({}),
    handleHttp: async () => false,
    close: async () => {},
  }
}
