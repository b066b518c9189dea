import {strict as assert} from 'node:assert'
import {createHash, createHmac, pbkdf2Sync} from 'node:crypto'
import {md5Password, ScramClient} from '../../../../src/protocol/pg/auth.js'

/** The server side of SCRAM-SHA-256, as PostgreSQL verifies a client proof. */
function server(password: string, salt: Buffer, iterations: number) {
  const salted = pbkdf2Sync(password, salt, iterations, 32, 'sha256')
  const storedKey = createHash('sha256').update(createHmac('sha256', salted).update('Client Key').digest()).digest()
  const serverKey = createHmac('sha256', salted).update('Server Key').digest()
  return {storedKey, serverKey}
}

describe('pg auth (client side)', () => {
  it('md5 matches PostgreSQL\'s formula', () => {
    // md5(md5("secret" + "alice") + salt), computed independently
    const inner = createHash('md5').update('secretalice').digest('hex')
    const salt = Buffer.from([1, 2, 3, 4])
    const expected = 'md5' + createHash('md5').update(Buffer.concat([Buffer.from(inner), salt])).digest('hex')
    assert.equal(md5Password('alice', 'secret', salt), expected)
  })

  it('SCRAM-SHA-256: the proof verifies on the server and the server signature is checked', () => {
    const salt = Buffer.from('0123456789abcdef')
    const {storedKey, serverKey} = server('pencil', salt, 4096)
    const c = new ScramClient('pencil', 'clientnonce')
    const first = c.clientFirst()
    assert.equal(first, 'n,,n=,r=clientnonce')
    const serverFirst = `r=clientnonceSERVER,s=${salt.toString('base64')},i=4096`
    const final = c.clientFinal(serverFirst)
    const [withoutProof, p] = final.split(',p=')
    const authMessage = `n=,r=clientnonce,${serverFirst},${withoutProof}`
    const clientSig = createHmac('sha256', storedKey).update(authMessage).digest()
    const proof = Buffer.from(p, 'base64')
    const clientKey = Buffer.from(proof.map((b, i) => b ^ clientSig[i]))
    assert.ok(createHash('sha256').update(clientKey).digest().equals(storedKey), 'server accepts the proof')
    const serverSig = createHmac('sha256', serverKey).update(authMessage).digest('base64')
    assert.doesNotThrow(() => c.verifyServerFinal(`v=${serverSig}`))
    assert.throws(() => c.verifyServerFinal(`v=${Buffer.alloc(32).toString('base64')}`), /server signature does not verify/)
    assert.throws(() => c.verifyServerFinal('e=invalid-proof'), /rejected SCRAM/)
  })

  it('SCRAM refuses a server nonce that does not extend ours', () => {
    const c = new ScramClient('pw', 'abc')
    c.clientFirst()
    assert.throws(() => c.clientFinal('r=zzz,s=c2FsdA==,i=4096'), /nonce/)
    assert.throws(() => c.clientFinal('r=abcd,s=c2FsdA==,i=0'), /malformed/)
  })
})
