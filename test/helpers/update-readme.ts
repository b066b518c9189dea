// `npm run docs`: rewrites the README's command reference from oclif.manifest.json.
import {readFileSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {type Manifest, renderCommandReference, withCommandReference} from '../../src/client/command-reference.js'
import {ROOT} from './cli.js'

const manifest = JSON.parse(readFileSync(join(ROOT, 'oclif.manifest.json'), 'utf8')) as Manifest
const file = join(ROOT, 'README.md')
writeFileSync(file, withCommandReference(readFileSync(file, 'utf8'), renderCommandReference(manifest)))
console.log('README.md command reference updated')
