// The CLI's view of one gateway's replicas (src/client/gateways.ts): the --gateway list, which
// errors pass to the next replica, and the order a new relay link tries them in, against real
// WebSocket servers and a closed port on loopback.
import assert from 'node:assert/strict'
import type {AddressInfo} from 'node:net'
import {WebSocketServer} from 'ws'
import {firstAnswering, parseGatewayList, ReplicaDialer} from '../../../src/client/gateways.js'
import {HoopError} from '../../../src/shared/errors.js'
import {freePort} from '../../helpers/net.js'

describe('gateway replicas: list, failover order', function () {
  this.timeout(20_000)

  it('parses a comma-separated list: trimmed, normalised, duplicates dropped, the first URL is the identity', () => {
    assert.deepEqual(parseGatewayList(' http://a:8009/ , https://b:8443,http://a:8009'), {identity: 'http://a:8009', replicas: ['http://a:8009', 'https://b:8443']})
    assert.deepEqual(parseGatewayList('http://a:8009'), {identity: 'http://a:8009', replicas: ['http://a:8009']})
    assert.throws(() => parseGatewayList('http://a:8009,ftp://b'), /gateway URL must be http\(s\):\/\/host:port, got "ftp:\/\/b"/)
    assert.throws(() => parseGatewayList(' , '), /no gateway URL in " , "/)
  })

  it('passes a replica that is down to the next, but not a refusal every replica would give', async () => {
    const tried: string[] = []
    const down = (g: string) => new HoopError('GATEWAY_UNREACHABLE', `cannot reach gateway ${g}: ECONNREFUSED`)
    const ok = await firstAnswering(['a', 'b', 'c'], async (g) => {
      tried.push(g)
      if (g === 'a') throw down(g)
      if (g === 'b') throw new HoopError('GATEWAY_SHUTDOWN', 'gateway is shutting down')
      return g.toUpperCase()
    })
    assert.deepEqual(ok, {gateway: 'c', value: 'C'})
    assert.deepEqual(tried, ['a', 'b', 'c'])

    await assert.rejects(
      firstAnswering(['a', 'b'], async (g) => {
        throw down(g)
      }),
      (e: HoopError) => e.code === 'GATEWAY_UNREACHABLE' && e.message === 'no gateway replica answered: cannot reach gateway a: ECONNREFUSED; cannot reach gateway b: ECONNREFUSED',
    )
    const rejected: string[] = []
    await assert.rejects(
      firstAnswering(['a', 'b'], async (g) => {
        rejected.push(g)
        throw new HoopError('TOKEN_REJECTED', 'service-account key was revoked')
      }),
      /revoked/,
    )
    assert.deepEqual(rejected, ['a'], 'a rejected token is not tried on the next replica')
  })

  it('dials the replica that last worked, and after losing it starts from the next one', async () => {
    const servers = [new WebSocketServer({host: '127.0.0.1', port: 0}), new WebSocketServer({host: '127.0.0.1', port: 0})]
    const hits: number[] = []
    servers.forEach((wss, i) => wss.on('connection', (ws) => (hits.push(i), ws.close())))
    await Promise.all(servers.map((wss) => new Promise((r) => wss.once('listening', r))))
    const [a, b] = servers.map((wss) => `http://127.0.0.1:${(wss.address() as AddressInfo).port}`)
    const dead = `http://127.0.0.1:${await freePort()}`
    try {
      const dialer = new ReplicaDialer([dead, a, b])
      const dial = async () => {
        const {ws, gateway} = await dialer.dial('/v1/connect', 'token', 'test')
        ws.terminate()
        return gateway
      }
      assert.equal(await dial(), a, 'the dead first replica is passed over')
      assert.equal(await dial(), a, 'the replica that worked is tried first')
      dialer.lost(a)
      assert.equal(await dial(), b, 'after its link is lost, the next replica goes first')
      dialer.lost(dead) // a replica not in use: no change
      assert.equal(await dial(), b)
      assert.deepEqual(hits, [0, 0, 1, 1])
    } finally {
      for (const wss of servers) wss.close()
    }
  })
})
