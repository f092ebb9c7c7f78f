/**
 * The graph's layouts: the layered one puts each job one rank after the longest path of locks
 * into it, keeps a rank in job order and never overlaps two jobs; dagre's, for small graphs,
 * keeps every lock pointing left to right too. Steps of an artifact become labelled bands.
 */
import dagre from '@dagrejs/dagre'
import { describe, expect, it } from 'vitest'
import { NODE_H, NODE_W, layoutGraph } from '../../src/web/graph-layout.js'

/** A diamond and a tail: a → b, a → c, b → d, c → d, d → e, and a lone job f. */
const jobs = ['a', 'b', 'c', 'd', 'e', 'f'].map((id, index) => ({ id, index }))
const locks = [
  ['a', 'b'],
  ['a', 'c'],
  ['b', 'd'],
  ['c', 'd'],
  ['d', 'e'],
  ['a', 'e'],
].map(([jobId, nextId]) => ({ jobId: jobId!, nextId: nextId! }))

function placed(layout: ReturnType<typeof layoutGraph>) {
  return new Map(layout.nodes.map((n) => [n.id, n]))
}

describe.each([
  ['layered', undefined],
  ['dagre', dagre],
])('the %s layout', (engine, module) => {
  const layout = layoutGraph(jobs, locks, module)

  it('places every job once, no two overlapping, inside its size', () => {
    expect(layout.engine).toBe(engine)
    expect(layout.nodes.map((n) => n.id).sort()).toEqual(jobs.map((j) => j.id))
    for (const a of layout.nodes) {
      expect(a.x + NODE_W).toBeLessThanOrEqual(layout.width + 1)
      expect(a.y + NODE_H).toBeLessThanOrEqual(layout.height + 1)
      for (const b of layout.nodes) {
        if (a === b) continue
        const apart =
          a.x + NODE_W <= b.x || b.x + NODE_W <= a.x || a.y + NODE_H <= b.y || b.y + NODE_H <= a.y
        expect(apart, `${a.id} overlaps ${b.id}`).toBe(true)
      }
    }
  })

  it('draws every lock as a path from left to right', () => {
    const at = placed(layout)
    expect(layout.edges).toHaveLength(locks.length)
    for (const e of layout.edges) {
      expect(at.get(e.from)!.x).toBeLessThan(at.get(e.to)!.x)
      expect(e.d).toMatch(/^M[\d.]+,[\d.]+/)
    }
  })
})

describe('the layered layout', () => {
  it('ranks a job by its longest path of locks, and a rank by job index', () => {
    const at = placed(layoutGraph(jobs, locks))
    const rank = (id: string) => Math.round((at.get(id)!.x - 16) / (NODE_W + 60))
    expect(['a', 'b', 'c', 'd', 'e', 'f'].map(rank)).toEqual([0, 1, 1, 2, 3, 0])
    expect(at.get('a')!.y).toBeLessThan(at.get('f')!.y)
    expect(at.get('b')!.y).toBeLessThan(at.get('c')!.y)
  })

  it('ignores locks to jobs it was not given', () => {
    const layout = layoutGraph(jobs.slice(0, 2), locks)
    expect(layout.edges).toHaveLength(1)
  })

  it('bands an artifact’s jobs by iteration and step', () => {
    const stepped = [
      { id: 'i', index: 0, step: 0 },
      { id: 'p1', index: 1, step: 1, iteration: 0 },
      { id: 'p2', index: 2, step: 1, iteration: 0 },
      { id: 'q1', index: 3, step: 1, iteration: 1 },
    ]
    const layout = layoutGraph(stepped, [
      { jobId: 'i', nextId: 'p1' },
      { jobId: 'i', nextId: 'p2' },
      { jobId: 'p1', nextId: 'q1' },
    ])
    expect(layout.bands.map((b) => b.label)).toEqual([
      'step 0',
      'iteration 0 · step 1',
      'iteration 1 · step 1',
    ])
    const band = layout.bands[1]!
    for (const id of ['p1', 'p2']) {
      const n = placed(layout).get(id)!
      expect(n.x).toBeGreaterThanOrEqual(band.x)
      expect(n.y + NODE_H).toBeLessThanOrEqual(band.y + band.h)
    }
  })
})
