/**
 * An order's graph as SVG: jobs as boxes coloured by state (`data-state` carries it, for people
 * and tests alike), locks as paths, an artifact's steps as labelled bands. Wheel zooms about the
 * pointer, dragging pans; a click on a job opens it.
 *
 * The layout is computed once per set of jobs and locks; a job's change of state re-renders only
 * that job's box (each box compares its own props), so thousands of jobs stay live.
 */
import { Component } from 'preact'
import { useEffect, useMemo, useRef, useState } from 'preact/hooks'
import { DAGRE_LIMIT, NODE_H, NODE_W, layoutGraph } from './graph-layout.js'
import { html } from './ui.js'

/**
 * One job's box.
 * @extends {Component<{ id: string, x: number, y: number, name: string, where?: string,
 *   state: string }>}
 */
class JobNode extends Component {
  /** @param {any} next */
  shouldComponentUpdate(next) {
    const p = this.props
    return (
      p.state !== next.state ||
      p.x !== next.x ||
      p.y !== next.y ||
      p.name !== next.name ||
      p.where !== next.where
    )
  }

  render() {
    const { id, x, y, name, where, state } = this.props
    // A job bound to one target (an artifact's, named by its number) shows where it runs.
    const full = where === undefined ? name : `${name} · ${where}`
    const label = full.length > 22 ? `${full.slice(0, 21)}…` : full
    return html`<a
      href=${`#/jobs/${id}`}
      class="node"
      data-job=${id}
      data-name=${name}
      data-state=${state}
    >
      <title>${full} — ${state}</title>
      <rect x=${x} y=${y} width=${NODE_W} height=${NODE_H} rx="5" class=${`state-${state}`} />
      <text x=${x + 8} y=${y + NODE_H / 2 + 4}>${label}</text>
    </a>`
  }
}

/**
 * The paths and bands: drawn again only when the layout changes.
 * @extends {Component<{ layout: import('./graph-layout.js').Layout }>}
 */
class Backdrop extends Component {
  /** @param {any} next */
  shouldComponentUpdate(next) {
    return next.layout !== this.props.layout
  }

  render() {
    const { layout } = this.props
    return html`<g>
      ${layout.bands.map(
        (b) =>
          html`<g class="band">
            <rect x=${b.x} y=${b.y} width=${b.w} height=${b.h} rx="8" />
            <text x=${b.x + 8} y=${b.y + 12}>${b.label}</text>
          </g>`,
      )}
      <g class="edges">${layout.edges.map((e) => html`<path d=${e.d} />`)}</g>
    </g>`
  }
}

/** The one layout worker, started on first use. */
let worker = /** @type {Worker | undefined} */ (undefined)
let asked = 0

/**
 * dagre's layout of a graph small enough for it, computed in the worker; null until it comes
 * (and for larger graphs, which keep the layered layout).
 * @param {any[]} jobs
 * @param {any[]} locks
 * @param {((ms: number, engine: string) => void) | undefined} onRendered
 */
function useDagre(jobs, locks, onRendered) {
  const [laid, setLaid] = useState(/** @type {any} */ (null))
  useEffect(() => {
    setLaid(null)
    if (jobs.length > DAGRE_LIMIT) return
    worker ??= new Worker('/ui/layout-worker.js', { type: 'module' })
    const id = ++asked
    const started = performance.now()
    /** @param {MessageEvent} e */
    const on = (e) => {
      if (e.data.id !== id) return
      setLaid(e.data.layout)
      onRendered?.(performance.now() - started, 'dagre')
    }
    worker.addEventListener('message', on)
    worker.postMessage({
      id,
      jobs: jobs.map((j) => ({ id: j.id, index: j.index, step: j.step, iteration: j.iteration })),
      locks,
    })
    return () => worker?.removeEventListener('message', on)
  }, [jobs, locks])
  return laid
}

/**
 * @param {{ jobs: { id: string, index: number, name: string, step?: number, iteration?: number }[],
 *   locks: { jobId: string, nextId: string }[], states: Map<string, string>,
 *   onRendered?: (ms: number, engine: string) => void }} props
 */
export function Graph({ jobs, locks, states, onRendered }) {
  const started = performance.now()
  const layered = useMemo(() => layoutGraph(jobs, locks), [jobs, locks])
  const refined = useDagre(jobs, locks, onRendered)
  const layout = refined ?? layered
  const box = useRef(/** @type {SVGSVGElement | null} */ (null))
  const [view, setView] = useState({ x: 0, y: 0, k: 1 })
  const drag = useRef({ active: false, moved: false, x: 0, y: 0 })

  // Fit the graph's height (and width, when it is small) into the frame on a new layout.
  useEffect(() => {
    const el = box.current
    if (el === null) return
    const w = el.clientWidth
    const h = el.clientHeight
    const k = Math.min(1, w / Math.max(layout.width, 1), h / Math.max(layout.height, 1))
    const fit = Math.max(k, layout.nodes.length > 200 ? 0.35 : 0.05)
    setView({
      x: Math.max(0, (w - layout.width * fit) / 2),
      y: Math.max(12, (h - layout.height * fit) / 2),
      k: fit,
    })
  }, [layout])
  // `started` belongs to the render that made the layered layout: the time covers it and the DOM.
  useEffect(() => onRendered?.(performance.now() - started, layered.engine), [layered])

  /** @param {WheelEvent} e */
  const onWheel = (e) => {
    e.preventDefault()
    const rect = /** @type {SVGSVGElement} */ (box.current).getBoundingClientRect()
    const px = e.clientX - rect.left
    const py = e.clientY - rect.top
    setView((v) => {
      const k = Math.min(3, Math.max(0.03, v.k * Math.exp(-e.deltaY * 0.0015)))
      return { k, x: px - ((px - v.x) * k) / v.k, y: py - ((py - v.y) * k) / v.k }
    })
  }
  useEffect(() => {
    const el = box.current
    el?.addEventListener('wheel', onWheel, { passive: false })
    return () => el?.removeEventListener('wheel', onWheel)
  }, [])

  /** @param {PointerEvent} e */
  const onDown = (e) => {
    drag.current = { active: true, moved: false, x: e.clientX, y: e.clientY }
  }
  /** @param {PointerEvent} e */
  const onMove = (e) => {
    const d = drag.current
    if (!d.active) return
    const dx = e.clientX - d.x
    const dy = e.clientY - d.y
    if (!d.moved && Math.abs(dx) + Math.abs(dy) < 4) return
    d.moved = true
    d.x = e.clientX
    d.y = e.clientY
    setView((v) => ({ ...v, x: v.x + dx, y: v.y + dy }))
  }
  const onUp = () => void (drag.current.active = false)
  /** @param {MouseEvent} e */
  const onClick = (e) => {
    // The end of a drag is not a click on the job under the pointer.
    if (drag.current.moved) e.preventDefault()
    drag.current.moved = false
  }

  const byId = useMemo(() => new Map(jobs.map((j) => [j.id, j])), [jobs])
  return html`<svg
    ref=${box}
    class="graph"
    data-engine=${layout.engine}
    data-jobs=${layout.nodes.length}
    onPointerDown=${onDown}
    onPointerMove=${onMove}
    onPointerUp=${onUp}
    onPointerLeave=${onUp}
    onClickCapture=${onClick}
  >
    <defs>
      <marker
        id="arrow"
        viewBox="0 0 8 8"
        refX="8"
        refY="4"
        markerWidth="6"
        markerHeight="6"
        orient="auto"
      >
        <path d="M0,0L8,4L0,8z" class="arrowhead" />
      </marker>
    </defs>
    <g transform=${`translate(${view.x},${view.y}) scale(${view.k})`}>
      <${Backdrop} layout=${layout} />
      ${layout.nodes.map((n) => {
        const job = byId.get(n.id)
        return html`<${JobNode}
          key=${n.id}
          id=${n.id}
          x=${n.x}
          y=${n.y}
          name=${job?.name ?? n.id}
          where=${job?.policy?.kind === 'strict' ? job.policy.target : undefined}
          state=${states.get(n.id) ?? 'waiting'}
        />`
      })}
    </g>
  </svg>`
}
