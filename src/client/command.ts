// Base class for hoop commands: `--json` output, and HoopError -> message, hint and exit code.
import {Command} from '@oclif/core'
import chalk, {chalkStderr} from 'chalk'
import {HoopError} from '../shared/errors.js'
import {redact} from '../shared/log.js'
import {hintFor} from './hints.js'

// chalk already drops colour when the stream is not a terminal; NO_COLOR (https://no-color.org:
// set and not empty) it leaves to us. chalk's default instance is shared by every command.
if (process.env.NO_COLOR) {
  chalk.level = 0
  chalkStderr.level = 0
}

export abstract class HoopCommand extends Command {
  static override enableJsonFlag = true

  protected override async catch(err: Error & {exitCode?: number}): Promise<unknown> {
    if (err instanceof HoopError) {
      // A hint that fits what was presented to which gateway (hints.ts), else the code's own.
      const hint = (await hintFor(err).catch(() => undefined)) ?? err.hint
      if (this.jsonEnabled()) {
        this.logJson({error: {code: err.code, message: redact(err.message), ...(hint ? {hint} : {})}})
      } else {
        process.stderr.write(`${chalkStderr.red('Error:')} ${redact(err.message)}\n`)
        if (hint) process.stderr.write(`${chalkStderr.dim('Hint:')} ${hint}\n`)
      }
      this.exit(err.exitCode)
    }
    return super.catch(err)
  }
}
