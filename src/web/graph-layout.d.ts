// The types of graph-layout.js for the TypeScript that tests and benches it; the browser loads
// the JavaScript as it is. Kept beside it, and in step with its JSDoc.
export interface LayoutJob {
  id: string
  index: number
  step?: number
  iteration?: number
}
export interface LayoutLock {
  jobId: string
  nextId: string
}
/** A node's top left corner. */
export interface Placed {
  id: string
  x: number
  y: number
}
export interface Route {
  from: string
  to: string
  /** An SVG path. */
  d: string
}
export interface Band {
  label: string
  x: number
  y: number
  w: number
  h: number
}
export interface Layout {
  nodes: Placed[]
  edges: Route[]
  bands: Band[]
  width: number
  height: number
  engine: 'dagre' | 'layered'
}
export const DAGRE_LIMIT: number
export const NODE_W: number
export const NODE_H: number
export function layoutGraph(jobs: LayoutJob[], locks: LayoutLock[], dagre?: unknown): Layout
