import assert from 'node:assert/strict'
import {createHash, randomBytes} from 'node:crypto'
import {EMPTY_ROOT, leafHash, MerkleFrontier, MerkleTree, nodeHash, rootFromRange, verifyConsistency, verifyInclusion} from '../../../src/audit/merkle.js'

/** RFC 6962 §2.1 MTH written straight from the definition, to check the fast tree against. */
function mth(leaves: Buffer[]): Buffer {
  if (leaves.length === 0) return createHash('sha256').digest()
  if (leaves.length === 1) return leaves[0]
  let k = 1
  while (k * 2 < leaves.length) k *= 2
  return nodeHash(mth(leaves.slice(0, k)), mth(leaves.slice(k)))
}

function flip(b: Buffer): Buffer {
  const c = Buffer.from(b)
  c[c.length - 1] ^= 1
  return c
}

let seed = 12345
const rand = (n: number) => {
  seed = (seed * 1103515245 + 12345) % 2 ** 31
  return seed % n
}

describe('audit Merkle tree (RFC 6962 / 9162)', () => {
  it('leaf and node hashes use the 0x00 / 0x01 prefixes; empty tree is SHA-256("")', () => {
    assert.equal(leafHash('').toString('hex'), '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d')
    assert.equal(EMPTY_ROOT.toString('hex'), 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855')
    const l = leafHash('a')
    const r = leafHash('b')
    assert.deepEqual(nodeHash(l, r), createHash('sha256').update(Buffer.concat([Buffer.from([1]), l, r])).digest())
  })

  it('matches the RFC 6962 test vectors of certificate-transparency-go', () => {
    // Leaves and roots from certificate-transparency-go merkletree tests (RFC 6962 vectors).
    const inputs = ['', '00', '10', '2021', '3031', '40414243', '5051525354555657', '606162636465666768696a6b6c6d6e6f'].map((h) => Buffer.from(h, 'hex'))
    const roots = [
      '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
      'fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125',
      'aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77',
      'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
      '4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4',
      '76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef',
      'ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c',
      '5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328',
    ]
    const leaves = inputs.map((i) => leafHash(i))
    const f = new MerkleFrontier()
    for (let n = 1; n <= leaves.length; n++) {
      f.push(leaves[n - 1])
      assert.equal(f.root().toString('hex'), roots[n - 1], `root of size ${n}`)
      assert.equal(MerkleTree.fromLeaves(leaves.slice(0, n)).root().toString('hex'), roots[n - 1])
    }
  })

  it('a frontier stored as state() and restored at its size extends to the same roots (the PostgreSQL head row)', () => {
    const leaves = Array.from({length: 70}, () => leafHash(randomBytes(8)))
    for (let size = 0; size <= 64; size++) {
      const f = new MerkleFrontier()
      for (const l of leaves.slice(0, size)) f.push(l)
      const restored = MerkleFrontier.restore(size, f.state())
      assert.ok(restored.root().equals(f.root()), `root at size ${size}`)
      for (const l of leaves.slice(size, size + 6)) {
        restored.push(l)
        f.push(l)
      }
      assert.ok(restored.root().equals(f.root()), `root after extending from size ${size}`)
      assert.equal(restored.size, f.size)
    }
    const seven = new MerkleFrontier()
    for (const l of leaves.slice(0, 7)) seven.push(l)
    assert.throws(() => MerkleFrontier.restore(8, seven.state()), /a Merkle frontier of size 8 has 1 hashes, not 3/)
  })

  it('property: every inclusion proof and sampled consistency/range proofs verify for random sizes; a flipped bit fails', () => {
    const sizes = [1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 31, 33, 100, 127, 128, 129, 1000, 1025]
    for (let t = 0; t < 2; t++) sizes.push(1 + rand(3000))
    for (const size of sizes) {
      const leaves = Array.from({length: size}, () => leafHash(randomBytes(8)))
      const tree = MerkleTree.fromLeaves(leaves)
      const root = tree.root()
      const f = new MerkleFrontier()
      for (const l of leaves) f.push(l)
      assert.ok(f.root().equals(root), `frontier root, size ${size}`)
      if (size <= 300) assert.ok(mth(leaves).equals(root), `reference MTH, size ${size}`)
      for (let i = 0; i < size; i++) {
        const proof = tree.inclusionProof(i)
        assert.ok(verifyInclusion(leaves[i], i, size, proof, root), `inclusion ${i}/${size}`)
        if (i % 97 === 0) {
          assert.ok(!verifyInclusion(flip(leaves[i]), i, size, proof, root))
          assert.ok(!verifyInclusion(leaves[i], i, size, proof, flip(root)))
          if (proof.length > 0) assert.ok(!verifyInclusion(leaves[i], i, size, [flip(proof[0]), ...proof.slice(1)], root))
          if (size > 1) assert.ok(!verifyInclusion(leaves[i], (i + 1) % size, size, proof, root))
        }
      }
      for (let s = 0; s < 20; s++) {
        const m = 1 + rand(size)
        const proof = tree.consistencyProof(m)
        const old = tree.root(m)
        assert.ok(verifyConsistency(m, size, old, root, proof), `consistency ${m}->${size}`)
        if (m < size) {
          assert.ok(!verifyConsistency(m, size, flip(old), root, proof), `flipped old root ${m}->${size}`)
          assert.ok(!verifyConsistency(m, size, old, root, [flip(proof[0]), ...proof.slice(1)]), `flipped proof ${m}->${size}`)
        }
        const a = rand(size)
        const b = a + 1 + rand(size - a)
        const rp = tree.rangeProof(a, b)
        assert.ok(rootFromRange(a, leaves.slice(a, b), size, rp)!.equals(root), `range [${a},${b}) of ${size}`)
        const tampered = leaves.slice(a, b)
        tampered[rand(tampered.length)] = flip(tampered[0])
        assert.ok(!rootFromRange(a, tampered, size, rp)?.equals(root))
      }
    }
  })
})
