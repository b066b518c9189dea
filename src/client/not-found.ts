// oclif `command_not_found` hook: `hoop conect demo` says what was meant. It replaces
// @oclif/plugin-not-found, which prints its suggestion only inside a terminal prompt: without a
// terminal (a script, CI, a pipe) it exited 127 with "Run hoop help" and no suggestion at all.
// Here the suggestion is always printed; on a terminal it is also offered (Enter runs it, 10 s
// timeout); otherwise the exit status stays 127, the shell's "command not found".
import {type Hook, toConfiguredId} from '@oclif/core'
import {confirm} from '@inquirer/prompts'
import {chalkStderr} from 'chalk'

const NOT_FOUND_EXIT = 127

/** Edit distance (insertions, deletions, substitutions), enough to rank a few dozen command ids. */
export function editDistance(a: string, b: string): number {
  let prev = Array.from({length: b.length + 1}, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    const cur = [i]
    for (let j = 1; j <= b.length; j++) cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1))
    prev = cur
  }
  return prev[b.length]
}

/**
 * The command meant by `id` (colon-separated, as oclif passes it), with the words after it that
 * become its arguments; undefined when nothing is close enough to be a plausible typo.
 */
export function suggestCommand(id: string, commandIds: readonly string[]): {id: string; argv: string[]} | undefined {
  const words = id.split(':')
  let best: {id: string; argv: string[]; distance: number} | undefined
  // Try every prefix: in `conect demo` the command is one word and `demo` an argument.
  for (let n = words.length; n >= 1; n--) {
    const head = words.slice(0, n).join(':')
    for (const c of commandIds) {
      if (c.split(':').length !== n) continue
      const distance = editDistance(head, c)
      if (distance <= Math.max(1, Math.floor(c.length / 3)) && (!best || distance < best.distance)) best = {id: c, argv: words.slice(n), distance}
    }
  }
  return best && {id: best.id, argv: best.argv}
}

const hook: Hook<'command_not_found'> = async function (opts) {
  const ids = [...opts.config.commands.filter((c) => !c.hidden).flatMap((c) => [c.id, ...c.aliases])]
  const typed = toConfiguredId(opts.id, opts.config)
  const topic = opts.config.findTopic(opts.id.split(':')[0]) ? ` ${opts.id.split(':')[0]}` : ''
  const help = `${opts.config.bin} help${topic}`
  const found = suggestCommand(opts.id, ids)
  const argv = found && (opts.argv?.length ? opts.argv : found.argv)
  const meant = found && [opts.config.bin, toConfiguredId(found.id, opts.config), ...(argv ?? [])].join(' ')
  // NO_COLOR (https://no-color.org) as in command.ts, which this hook runs without.
  const shown = process.env.NO_COLOR ? typed : chalkStderr.yellow(typed)
  process.stderr.write(`${shown} is not a ${opts.config.bin} command.${meant ? ` Did you mean \`${meant}\`?` : ''}\n`)
  if (found && process.stdin.isTTY && process.stderr.isTTY) {
    const answer = confirm({message: `Run \`${meant}\`?`, default: true}, {output: process.stderr})
    const timer = setTimeout(() => answer.cancel(), 10_000)
    const yes = await answer.catch(() => false).finally(() => clearTimeout(timer))
    if (yes) return opts.config.runCommand(found.id, argv)
  }
  this.error(`Run \`${help}\` for a list of available commands.`, {exit: NOT_FOUND_EXIT})
}

export default hook
