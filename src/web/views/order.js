/**
 * One order: its state and counts, a cancel button, and the graph of its jobs, live. Job events
 * on the order's stream recolour the jobs; the stream's `fulfilment` events update the counts.
 */
import { useEffect, useState } from 'preact/hooks'
import { follow, get, offers, post } from '../api.js'
import { Graph } from '../graph.js'
import { ErrorBox, JOB_STATES, Pill, Progress, STATE_OF_EVENT, age, html, shortId } from '../ui.js'

/**
 * The order's locks; from the waiting jobs' reasons when the server has no locks route (those
 * show only the locks still holding).
 * @param {string} id
 * @param {any[]} jobs
 */
async function locksOf(id, jobs) {
  if ((await offers()).has('/v1/orders/{id}/locks')) {
    return get(`/v1/orders/${encodeURIComponent(id)}/locks`)
  }
  return jobs.flatMap((j) =>
    j.wait?.kind === 'locks'
      ? j.wait.waitingFor.map((/** @type {string} */ from) => ({ jobId: from, nextId: j.id }))
      : [],
  )
}

/** @param {{ id: string }} props */
export function OrderView({ id }) {
  const [detail, setDetail] = useState(/** @type {any} */ (null))
  const [graph, setGraph] = useState(/** @type {{ jobs: any[], locks: any[] } | null} */ (null))
  const [states, setStates] = useState(() => new Map())
  const [error, setError] = useState('')
  const [actionError, setActionError] = useState('')
  const [rendered, setRendered] = useState(
    /** @type {{ ms: number, engine: string } | null} */ (null),
  )

  const load = async () => {
    const path = `/v1/orders/${encodeURIComponent(id)}`
    const [d, jobs] = await Promise.all([get(path), get(`${path}/jobs`)])
    const locks = await locksOf(id, jobs)
    setDetail(d)
    setGraph({ jobs, locks })
    setStates(new Map(jobs.map((/** @type {any} */ j) => [j.id, j.state])))
  }

  useEffect(() => {
    setDetail(null)
    setGraph(null)
    setError('')
    load().catch((e) => setError(e.message))
    /** @type {Map<string, string>} */
    const changes = new Map()
    let timer = /** @type {ReturnType<typeof setTimeout> | undefined} */ (undefined)
    // Job events come in bursts: the graph takes them in batches, at most ten times a second.
    const flush = () => {
      timer = undefined
      const batch = new Map(changes)
      changes.clear()
      setStates((s) => {
        const next = new Map(s)
        for (const [job, state] of batch) next.set(job, state)
        return next
      })
    }
    const stream = follow(`/v1/events?order=${encodeURIComponent(id)}`, (type, data) => {
      const state = STATE_OF_EVENT[type]
      if (state !== undefined && typeof data.jobId === 'string') {
        changes.set(data.jobId, state)
        timer ??= setTimeout(flush, 100)
      } else if (type === 'fulfilment') {
        setDetail((/** @type {any} */ d) => (d === null ? d : { ...d, fulfilment: data }))
        if (data.state !== 'running') {
          // The order ended: its last jobs' states (cancelled, skipped) come from the store.
          stream.close()
          setTimeout(() => load().catch((e) => setError(e.message)), 150)
        }
      }
    })
    return () => {
      stream.close()
      if (timer !== undefined) clearTimeout(timer)
    }
  }, [id])

  const cancel = async () => {
    setActionError('')
    try {
      const f = await post(`/v1/orders/${encodeURIComponent(id)}/cancel`)
      setDetail((/** @type {any} */ d) => ({ ...d, fulfilment: f }))
    } catch (e) {
      setActionError(`Cancel refused: ${/** @type {Error} */ (e).message}`)
    }
  }

  if (error !== '') return html`<${ErrorBox} message=${error} />`
  if (detail === null) return html`<p class="muted">Loading order…</p>`
  const { order, fulfilment: f } = detail
  const source =
    order.source.kind === 'packet'
      ? `packet ${order.source.name ?? shortId(order.source.packetId)}`
      : `artifact ${order.source.name ?? shortId(order.source.artifactId)}`
  return html`<section class="order">
    <header class="pagehead">
      <div>
        <h1>Order <code class="id">${order.id}</code></h1>
        <p class="meta">
          <${Pill} state=${f.state} />
          <span>${source}</span>
          <span>owner <b>${order.owner}</b></span>
          <span>priority <b>${order.priority}</b></span>
          <span>created ${age(order.createdAt)} ago</span>
          ${
            f.iterations === undefined
              ? null
              : html`<span>iteration ${(f.iteration ?? 0) + 1} of ${f.iterations}</span>`
          }
        </p>
        ${f.reason === undefined ? null : html`<p class="reason">${f.reason}</p>`}
      </div>
      <div class="actions">
        ${
          f.state === 'running'
            ? html`<button class="danger" onClick=${cancel} data-action="cancel-order">
                Cancel order
              </button>`
            : null
        }
      </div>
    </header>
    <${ErrorBox} message=${actionError} />
    <div class="counts">
      <${Progress} counts=${f.counts} total=${f.total} />
      ${JOB_STATES.map(
        (s) =>
          html`<span class="count"
            ><i class=${`dot state-${s}`} />${s} <b>${f.counts[s] ?? 0}</b></span
          >`,
      )}
      ${
        rendered === null
          ? null
          : html`<span class="muted small"
              >laid out by ${rendered.engine} in ${Math.round(rendered.ms)} ms</span
            >`
      }
    </div>
    ${
      graph === null
        ? html`<p class="muted">Loading jobs…</p>`
        : html`<div class="graph-frame" data-render-ms=${rendered?.ms}>
            <${Graph}
              jobs=${graph.jobs}
              locks=${graph.locks}
              states=${states}
              onRendered=${(/** @type {number} */ ms, /** @type {string} */ engine) =>
                setRendered({ ms, engine })}
            />
          </div>`
    }
  </section>`
}
