import {HoopCommand} from '../src/client/command.js'

export default class Version extends HoopCommand {
  static override summary = 'Print the hoop version.'
  static override description = `Prints the hoop version and the Node.js version it runs on. Include both in bug reports.`
  static override examples = ['<%= config.bin %> version', '<%= config.bin %> version --json']

  async run(): Promise<{version: string; node: string}> {
    await this.parse(Version)
    const result = {version: this.config.version, node: process.version}
    this.log(`hoop ${result.version} (node ${result.node})`)
    return result
  }
}
