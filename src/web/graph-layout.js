/**
 * Where each job of an order's graph goes, left to right. A plain layered layout — each job's
 * rank its longest path from a first job, jobs of a rank in job order, no crossing minimisation —
 * is linear in jobs and locks and draws at once. Up to {@link DAGRE_LIMIT} jobs, dagre then lays
 * it out again (ranks, crossing minimisation, edge routes) in a worker: it takes from a tenth of
 * a second to two seconds on a few hundred jobs with many locks, too long to hold the page.
 *
 * Pure: no DOM, and dagre is passed in (a worker cannot use the page's import map). The same
 * input gives the same layout, so the page and the bench measure the same.
 */

/** The most jobs laid out with dagre. */
export const DAGRE_LIMIT = 500
export const NODE_W = 150
export const NODE_H = 30
const RANK_GAP = 60
const ROW_GAP = 12

/**
 * @typedef {{ id: string, index: number, step?: number, iteration?: number }} LayoutJob
 * @typedef {{ jobId: string, nextId: string }} LayoutLock
 * @typedef {{ id: string, x: number, y: number }} Placed  x, y: the node's top left corner
 * @typedef {{ from: string, to: string, d: string }} Route  d: an SVG path
 * @typedef {{ label: string, x: number, y: number, w: number, h: number }} Band
 * @typedef {{ nodes: Placed[], edges: Route[], bands: Band[], width: number, height: number,
 *   engine: 'dagre' | 'layered' }} Layout
 */

/**
 * The layout by `engine`: `layered`, or dagre's when given the dagre module.
 * @param {LayoutJob[]} jobs
 * @param {LayoutLock[]} locks
 * @param {any} [dagre]  the `@dagrejs/dagre` module
 * @returns {Layout}
 */
export function layoutGraph(jobs, locks, dagre) {
  const known = new Set(jobs.map((j) => j.id))
  const edges = locks.filter((l) => known.has(l.jobId) && known.has(l.nextId))
  const laid = dagre === undefined ? layered(jobs, edges) : withDagre(dagre, jobs, edges)
  return { ...laid, bands: bandsOf(jobs, laid.nodes) }
}

/**
 * @param {any} dagre
 * @param {LayoutJob[]} jobs
 * @param {LayoutLock[]} locks
 * @returns {Omit<Layout, 'bands'>}
 */
function withDagre(dagre, jobs, locks) {
  const g = new dagre.graphlib.Graph()
  g.setGraph({ rankdir: 'LR', nodesep: ROW_GAP, ranksep: RANK_GAP, marginx: 16, marginy: 16 })
  g.setDefaultEdgeLabel(() => ({}))
  for (const j of jobs) g.setNode(j.id, { width: NODE_W, height: NODE_H })
  for (const l of locks) g.setEdge(l.jobId, l.nextId)
  dagre.layout(g)
  const nodes = jobs.map((j) => {
    const n = g.node(j.id)
    return { id: j.id, x: n.x - NODE_W / 2, y: n.y - NODE_H / 2 }
  })
  const routes = locks.map((l) => {
    const points = g.edge(l.jobId, l.nextId).points ?? []
    const d = points
      .map((p, i) => `${i === 0 ? 'M' : 'L'}${p.x.toFixed(1)},${p.y.toFixed(1)}`)
      .join('')
    return { from: l.jobId, to: l.nextId, d }
  })
  const graph = g.graph()
  return {
    nodes,
    edges: routes,
    width: graph.width ?? 0,
    height: graph.height ?? 0,
    engine: 'dagre',
  }
}

/**
 * Ranks by longest path (Kahn's topological order), rows by job index within a rank, no
 * crossing minimisation: linear in jobs and locks.
 * @param {LayoutJob[]} jobs
 * @param {LayoutLock[]} locks
 * @returns {Omit<Layout, 'bands'>}
 */
function layered(jobs, locks) {
  const position = new Map(jobs.map((j, i) => [j.id, i]))
  const next = jobs.map(() => /** @type {number[]} */ ([]))
  const into = new Array(jobs.length).fill(0)
  for (const l of locks) {
    const a = position.get(l.jobId)
    const b = position.get(l.nextId)
    if (a === undefined || b === undefined) continue
    next[a].push(b)
    into[b]++
  }
  const rank = new Array(jobs.length).fill(0)
  const queue = []
  for (let i = 0; i < jobs.length; i++) if (into[i] === 0) queue.push(i)
  for (let head = 0; head < queue.length; head++) {
    const a = queue[head]
    for (const b of next[a]) {
      rank[b] = Math.max(rank[b], rank[a] + 1)
      if (--into[b] === 0) queue.push(b)
    }
  }
  const order = jobs.map((_, i) => i).sort((a, b) => jobs[a].index - jobs[b].index)
  const rows = /** @type {number[]} */ ([])
  const y = new Array(jobs.length)
  for (const i of order) {
    const r = rank[i]
    rows[r] = (rows[r] ?? 0) + 1
    y[i] = 16 + (rows[r] - 1) * (NODE_H + ROW_GAP)
  }
  const x = (/** @type {number} */ r) => 16 + r * (NODE_W + RANK_GAP)
  const nodes = jobs.map((j, i) => ({ id: j.id, x: x(rank[i]), y: y[i] }))
  const edges = locks.flatMap((l) => {
    const a = position.get(l.jobId)
    const b = position.get(l.nextId)
    if (a === undefined || b === undefined) return []
    const x1 = x(rank[a]) + NODE_W
    const y1 = y[a] + NODE_H / 2
    const x2 = x(rank[b])
    const y2 = y[b] + NODE_H / 2
    const mid = (x1 + x2) / 2
    return [
      { from: l.jobId, to: l.nextId, d: `M${x1},${y1}C${mid},${y1} ${mid},${y2} ${x2},${y2}` },
    ]
  })
  const ranks = rows.length
  const tallest = Math.max(0, ...rows.map((n) => n ?? 0))
  return {
    nodes,
    edges,
    width: 32 + ranks * NODE_W + Math.max(0, ranks - 1) * RANK_GAP,
    height: 32 + tallest * NODE_H + Math.max(0, tallest - 1) * ROW_GAP,
    engine: 'layered',
  }
}

/**
 * An artifact's jobs grouped by iteration and step: one background band around each group's
 * nodes, labelled. Packets (no steps) have none.
 * @param {LayoutJob[]} jobs
 * @param {Placed[]} nodes
 * @returns {Band[]}
 */
function bandsOf(jobs, nodes) {
  /** @type {Map<string, Band & { x2: number, y2: number }>} */
  const groups = new Map()
  jobs.forEach((j, i) => {
    if (j.step === undefined) return
    const key = `${j.iteration ?? 0}/${j.step}`
    const n = nodes[i]
    const g = groups.get(key)
    if (g === undefined) {
      const label = `${j.iteration === undefined ? '' : `iteration ${j.iteration} · `}step ${j.step}`
      groups.set(key, { label, x: n.x, y: n.y, w: 0, h: 0, x2: n.x + NODE_W, y2: n.y + NODE_H })
    } else {
      g.x = Math.min(g.x, n.x)
      g.y = Math.min(g.y, n.y)
      g.x2 = Math.max(g.x2, n.x + NODE_W)
      g.y2 = Math.max(g.y2, n.y + NODE_H)
    }
  })
  return [...groups.values()].map((g) => ({
    label: g.label,
    x: g.x - 6,
    y: g.y - 18,
    w: g.x2 - g.x + 12,
    h: g.y2 - g.y + 24,
  }))
}
