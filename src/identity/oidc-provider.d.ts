// Minimal typings for the parts of oidc-provider 9 that the dev IdP uses (the package ships none,
// and @types/oidc-provider lags the major version). Keep this as small as the usage.
declare module 'oidc-provider' {
  import type {IncomingMessage, ServerResponse} from 'node:http'

  export interface AdapterPayload {
    [key: string]: unknown
    userCode?: string
    uid?: string
    grantId?: string
    consumed?: unknown
  }

  export interface Adapter {
    upsert(id: string, payload: AdapterPayload, expiresIn: number): Promise<void>
    find(id: string): Promise<AdapterPayload | undefined>
    findByUserCode(userCode: string): Promise<AdapterPayload | undefined>
    findByUid(uid: string): Promise<AdapterPayload | undefined>
    consume(id: string): Promise<void>
    destroy(id: string): Promise<void>
    revokeByGrantId(grantId: string): Promise<void>
  }

  export interface ClientMetadata {
    client_id: string
    client_secret?: string
    token_endpoint_auth_method?: string
    grant_types?: string[]
    response_types?: string[]
    redirect_uris?: string[]
    [key: string]: unknown
  }

  export interface KoaContextWithOIDC {
    body: unknown
    type: string
    [key: string]: unknown
  }

  export interface Account {
    accountId: string
    claims(use: string, scope: string): Promise<Record<string, unknown>>
  }

  export interface ResourceServerInfo {
    scope: string
    audience?: string
    accessTokenTTL?: number
    accessTokenFormat?: 'opaque' | 'jwt'
    jwt?: {sign?: {alg: string}}
  }

  export interface Configuration {
    adapter?: new (name: string) => Adapter
    clients?: ClientMetadata[]
    jwks?: {keys: object[]}
    cookies?: {keys: string[]}
    claims?: Record<string, string[]>
    scopes?: string[]
    ttl?: Record<string, number>
    findAccount?: (ctx: KoaContextWithOIDC, id: string) => Promise<Account | undefined>
    extraTokenClaims?: (ctx: KoaContextWithOIDC, token: {accountId?: string; clientId?: string}) => Promise<Record<string, unknown> | undefined>
    interactions?: {url: (ctx: KoaContextWithOIDC, interaction: {uid: string}) => string}
    features?: {
      devInteractions?: {enabled: boolean}
      revocation?: {enabled: boolean; allowedPolicy?: (ctx: KoaContextWithOIDC, client: {clientId: string}, token: {clientId?: string}) => Promise<boolean>}
      clientCredentials?: {enabled: boolean}
      deviceFlow?: {
        enabled: boolean
        charset?: 'base-20' | 'digits'
        mask?: string
        userCodeInputSource?: (ctx: KoaContextWithOIDC, form: string, out: unknown, err: unknown) => Promise<void>
        userCodeConfirmSource?: (ctx: KoaContextWithOIDC, form: string, client: {clientId: string}, deviceInfo: unknown, userCode: string) => Promise<void>
        successSource?: (ctx: KoaContextWithOIDC) => Promise<void>
      }
      resourceIndicators?: {
        enabled: boolean
        defaultResource?: (ctx: KoaContextWithOIDC, client: unknown, oneOf?: string[]) => Promise<string | string[] | undefined>
        useGrantedResource?: (ctx: KoaContextWithOIDC, model: unknown) => Promise<boolean>
        getResourceServerInfo?: (ctx: KoaContextWithOIDC, indicator: string, client: unknown) => Promise<ResourceServerInfo>
      }
    }
    renderError?: (ctx: KoaContextWithOIDC, out: {error: string; error_description?: string}, error: Error) => Promise<void>
    pkce?: {required?: (ctx: KoaContextWithOIDC, client: unknown) => boolean}
  }

  export interface InteractionDetails {
    uid: string
    prompt: {name: string; details: Record<string, unknown>}
    params: Record<string, unknown>
    session?: {accountId: string}
    grantId?: string
  }

  export interface Grant {
    addOIDCScope(scope: string): void
    addOIDCClaims(claims: string[]): void
    addResourceScope(indicator: string, scope: string): void
    save(): Promise<string>
  }

  export default class Provider {
    constructor(issuer: string, configuration?: Configuration)
    static errors: {InvalidTarget: new (description?: string) => Error}
    readonly issuer: string
    Grant: {new (init: {accountId: string; clientId: string}): Grant; find(id: string): Promise<Grant | undefined>}
    on(event: string, listener: (...args: never[]) => void): this
    callback(): (req: IncomingMessage, res: ServerResponse) => Promise<void>
    interactionDetails(req: IncomingMessage, res: ServerResponse): Promise<InteractionDetails>
    interactionFinished(req: IncomingMessage, res: ServerResponse, result: Record<string, unknown>, opts?: {mergeWithLastSubmission?: boolean}): Promise<void>
  }
}
