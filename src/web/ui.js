/**
 * Small pieces every view uses: the `html` template tag (htm on Preact: every value it renders
 * is text, escaped by Preact; nothing here ever sets innerHTML), state pills, progress bars,
 * times, and a waiting job's reason in words.
 */
import { h } from 'preact'
import htm from 'htm'

export const html = htm.bind(h)

/** The job states in the order a run moves through them; counts and legends follow it. */
export const JOB_STATES = [
  'waiting',
  'ready',
  'running',
  'succeeded',
  'failed',
  'skipped',
  'cancelled',
]

/** @param {string} id */
export function shortId(id) {
  return id.length > 12 ? `…${id.slice(-8)}` : id
}

/** @param {{ state: string }} props */
export function Pill({ state }) {
  return html`<span class=${`pill state-${state}`}>${state}</span>`
}

/** @param {{ message: string | undefined | null }} props */
export function ErrorBox({ message }) {
  return message ? html`<div class="error" role="alert">${message}</div>` : null
}

/**
 * A bar of an order's jobs: succeeded, running, failed, skipped or cancelled, on a track of
 * what is still to run (waiting and ready).
 * @param {{ counts: Record<string, number>, total: number }} props
 */
export function Progress({ counts, total }) {
  const parts = [
    ['succeeded', counts.succeeded ?? 0],
    ['running', counts.running ?? 0],
    ['failed', counts.failed ?? 0],
    ['cancelled', (counts.cancelled ?? 0) + (counts.skipped ?? 0)],
  ]
  const of = Math.max(total, 1)
  const left = (counts.waiting ?? 0) + (counts.ready ?? 0)
  const title = [...parts, ['to run', left]].map(([k, n]) => `${n} ${k}`).join(', ')
  return html`<div class="progress" title=${title}>
    <div class="track">
      ${parts.map(
        ([k, n]) =>
          // A style object is set through the CSSOM, which the page's CSP allows (a style
          // attribute in markup it refuses).
          html`<span class=${`bar state-${k}`} style=${{ width: `${(Number(n) * 100) / of}%` }} />`,
      )}
    </div>
    <small>${counts.succeeded ?? 0}/${total}</small>
  </div>`
}

/** @param {number | undefined} ms */
export function age(ms) {
  if (ms === undefined) return ''
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000))
  if (s < 60) return `${s}s`
  if (s < 3600) return `${Math.floor(s / 60)}m`
  if (s < 86_400) return `${Math.floor(s / 3600)}h`
  return `${Math.floor(s / 86_400)}d`
}

/** @param {number | undefined} ms */
export function time(ms) {
  return ms === undefined ? '' : new Date(ms).toLocaleString()
}

/** @param {number} from @param {number | undefined} to */
export function duration(from, to) {
  if (to === undefined) return ''
  const ms = to - from
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)} s`
}

/**
 * Why a job waits, in words, when the server sends no sentence of its own (`wait.text`).
 * @param {any} wait
 * @returns {string}
 */
export function describeWait(wait) {
  if (wait === undefined || wait === null) return ''
  if (typeof wait.text === 'string') return wait.text
  switch (wait.kind) {
    case 'locks':
      return `It waits for ${wait.waitingFor.length} job${wait.waitingFor.length === 1 ? '' : 's'} before it to succeed.`
    case 'backoff':
      return `It failed and will be tried again at ${time(wait.until)}.`
    case 'same-product':
      return `Another job (${shortId(wait.job)}) is making the same product; this one takes it when done.`
    case 'locality':
      return `It is held for ${wait.preferred.join(', ') || 'the targets'} that ${wait.stage === 'cached' ? 'have its product cached' : 'hold its inputs'}, until ${time(wait.until)}; then ${wait.stage === 'cached' ? 'targets with its inputs' : 'any target'} may take it.`
    case 'resource':
      return `The unique resource ${wait.resource} is held by job ${shortId(wait.holder)}.`
    case 'no-eligible-target': {
      const parts = [
        wait.target === undefined
          ? 'No live target can run it'
          : `It must run on ${wait.target}, which is not live or cannot run it`,
      ]
      if (wait.op !== undefined) parts.push(`(it needs a target that runs ${wait.op} jobs)`)
      if (wait.refusal !== undefined) parts.push(`: ${wait.refusal}`)
      return `${parts.join(' ')}.`
    }
    case 'queued':
      return wait.targets === 'any'
        ? 'It is queued for the next free slot on any target.'
        : `It is queued for a free slot on ${wait.targets.join(', ')}.`
    default:
      return JSON.stringify(wait)
  }
}

/** The state a job event moves a job to. */
export const STATE_OF_EVENT = /** @type {Record<string, string>} */ ({
  'job:ready': 'ready',
  'attempt:started': 'running',
  'job:retrying': 'waiting',
  'job:succeeded': 'succeeded',
  'job:failed': 'failed',
  'job:skipped': 'skipped',
  'job:cancelled': 'cancelled',
})
