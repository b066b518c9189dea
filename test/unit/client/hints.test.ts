// The small pure parts of the CLI's guidance: did-you-mean, the login note in `hoop connect`'s
// banner, and commands quoted with the HOOP_PROFILE they need.
import assert from 'node:assert/strict'
import {commandFor} from '../../../src/client/hints.js'
import {editDistance, suggestCommand} from '../../../src/client/not-found.js'
import {loginNote} from '../../../src/client/session-hint.js'

const IDS = ['connect', 'connections', 'login', 'logout', 'whoami', 'exec', 'approvals:approve', 'approvals:list', 'sessions:list', 'sessions:show', 'version']

describe('CLI guidance', () => {
  it('measures edit distance', () => {
    assert.equal(editDistance('conect', 'connect'), 1)
    assert.equal(editDistance('', 'abc'), 3)
    assert.equal(editDistance('kitten', 'sitting'), 3)
  })

  it('suggests the command a typo meant, keeping the words after it as arguments', () => {
    assert.deepEqual(suggestCommand('conect:demo', IDS), {id: 'connect', argv: ['demo']})
    assert.deepEqual(suggestCommand('approvals:aprove:apr_1', IDS), {id: 'approvals:approve', argv: ['apr_1']})
    assert.deepEqual(suggestCommand('sesions:lst', IDS), {id: 'sessions:list', argv: []})
    assert.deepEqual(suggestCommand('versoin', IDS), {id: 'version', argv: []})
    assert.equal(suggestCommand('xyzzy', IDS), undefined, 'nothing far-fetched')
  })

  it('says once that the connection replaces the user and database the client names', () => {
    assert.match(loginNote('postgres', {username: 'demo', database: 'demo'})!, /logs in as user "demo" to database "demo" .*the user and database your client names are replaced/)
    assert.match(loginNote('mysql', {username: 'app'})!, /logs in as user "app" with the connection's own credentials: the user your client names is replaced/)
    assert.equal(loginNote('postgres', {}), undefined)
    assert.equal(loginNote('http', {username: 'x'}), undefined)
  })

  it('quotes commands with the profile in use', () => {
    assert.equal(commandFor('login --gateway http://gw', {}), 'hoop login --gateway http://gw')
    assert.equal(commandFor('logout', {HOOP_PROFILE: 'approver'}), 'HOOP_PROFILE=approver hoop logout')
    assert.equal(commandFor('logout', {HOOP_PROFILE: "o'brien x"}), `HOOP_PROFILE='o'\\''brien x' hoop logout`)
  })
})
