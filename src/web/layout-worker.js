/**
 * Lays out an order's graph with dagre off the page's thread: the page shows the layered layout
 * at once and takes this one when it comes. A worker has no import map, so dagre comes by path.
 */
import dagre from './vendor/dagre.mjs'
import { layoutGraph } from './graph-layout.js'

addEventListener('message', (/** @type {MessageEvent} */ e) => {
  const { id, jobs, locks } = e.data
  postMessage({ id, layout: layoutGraph(jobs, locks, dagre) })
})
