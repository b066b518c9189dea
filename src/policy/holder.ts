// Holds the policy in force and hot-reloads it. A new file that does not validate never replaces
// the policy in force: the last good policy stays, and a 'reload' event says what was wrong.
//
// Events: 'reload' with ReloadResult ({ok: true, policy} or {ok: false, error}) and its cause:
// 'watch' (the file changed here, or a caller asked) or 'signal' (another replica reloaded).
import {EventEmitter} from 'node:events'
import {type FSWatcher, watch} from 'node:fs'
import {basename, dirname, resolve} from 'node:path'
import {type GatewayConfig, loadGatewayConfig} from '../shared/config.js'
import {asHoopError, HoopError} from '../shared/errors.js'
import {loadPolicyFile, policyFromGatewayConfig, policyPathFromConfig} from './load.js'
import type {Policy} from './types.js'

/** A policy file path, or a gateway config (whose `policy:` is a path, an inline mapping, or absent). */
type PolicySource = string | GatewayConfig

export type ReloadResult = {ok: true; policy: Policy} | {ok: false; error: HoopError}
export type ReloadCause = 'watch' | 'signal'

export class PolicyHolder extends EventEmitter {
  current: Policy
  private readonly load: () => Policy
  /** The file whose changes trigger a reload (undefined when there is nothing to watch). */
  readonly watchedFile?: string
  private watcher?: FSWatcher
  private timer?: NodeJS.Timeout

  /** Loads the policy now; throws HoopError CONFIG_INVALID when the initial policy is invalid. */
  constructor(
    source: PolicySource,
    private readonly debounceMs = 100,
  ) {
    super()
    if (typeof source === 'string') {
      const file = resolve(source)
      this.watchedFile = file
      this.load = () => loadPolicyFile(file)
    } else if (typeof source.policy === 'string') {
      const file = policyPathFromConfig(source, source.policy)
      this.watchedFile = file
      this.load = () => loadPolicyFile(file)
    } else if (source.policy !== undefined && source.policy !== null && source.file && !source.file.startsWith('<')) {
      // Inline policy: re-read the config file and take its policy section.
      const configFile = resolve(source.file)
      this.watchedFile = configFile
      let first: GatewayConfig | undefined = source
      this.load = () => {
        const cfg = first ?? loadGatewayConfig(configFile)
        first = undefined
        if (typeof cfg.policy === 'string') return loadPolicyFile(policyPathFromConfig(cfg, cfg.policy))
        return policyFromGatewayConfig(cfg)
      }
    } else {
      this.load = () => policyFromGatewayConfig(source)
    }
    this.current = this.load()
  }

  /** Reloads now. On failure the current policy is kept. Emits 'reload' either way. */
  reload(cause: ReloadCause = 'watch'): ReloadResult {
    let result: ReloadResult
    try {
      this.current = this.load()
      result = {ok: true, policy: this.current}
    } catch (err) {
      const error = err instanceof HoopError ? err : asHoopError(err)
      result = {ok: false, error}
    }
    this.emit('reload', result, cause)
    return result
  }

  /**
   * Watches the policy file and reloads shortly after it changes. The directory is watched, not the
   * file, because editors and `mv` replace the file (a new inode) rather than write into it.
   */
  watch(): void {
    if (this.watcher || !this.watchedFile) return
    const name = basename(this.watchedFile)
    this.watcher = watch(dirname(this.watchedFile), {persistent: false}, (_event, filename) => {
      if (filename !== null && filename.toString() !== name) return
      clearTimeout(this.timer)
      this.timer = setTimeout(() => this.reload(), this.debounceMs)
    })
    this.watcher.on('error', (err) => this.emit('reload', {ok: false, error: new HoopError('CONFIG_INVALID', `cannot watch ${this.watchedFile}: ${err.message}`)}))
  }

  close(): void {
    clearTimeout(this.timer)
    this.watcher?.close()
    this.watcher = undefined
  }
}
