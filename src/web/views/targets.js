/**
 * Targets: every worker and cluster the scheduler knows, live or lost, with its slots, what
 * runs there, labels, projects and problems; queue depths and the last heartbeat when the server
 * sends them. Refreshed every five seconds and on target events.
 */
import { useEffect, useState } from 'preact/hooks'
import { follow, get, throttle } from '../api.js'
import { ErrorBox, age, html } from '../ui.js'

/** @param {{ labels: Record<string, string> }} props */
function Labels({ labels }) {
  const entries = Object.entries(labels)
  if (entries.length === 0) return html`<span class="muted">—</span>`
  return entries.map(([k, v]) => html`<code class="tag">${k}=${v}</code> `)
}

export function TargetsView() {
  const [targets, setTargets] = useState(/** @type {any[] | null} */ (null))
  const [error, setError] = useState('')
  const [globalQueue, setGlobalQueue] = useState(/** @type {number | undefined} */ (undefined))

  useEffect(() => {
    let stop = false
    const load = () => {
      // The global queue (jobs any target may take) is the scheduler's, not a target's.
      get('/v1/stats')
        .then((s) => !stop && setGlobalQueue(s?.queues?.global))
        .catch(() => {})
      return get('/v1/targets')
        .then((t) => !stop && (setTargets(t), setError('')))
        .catch((e) => !stop && setError(e.message))
    }
    const refresh = throttle(() => void load(), 1000)
    void load()
    const timer = setInterval(refresh, 5000)
    const stream = follow('/v1/events', (type) => {
      if (type.startsWith('target:') || type.startsWith('attempt:')) refresh()
    })
    return () => {
      stop = true
      clearInterval(timer)
      refresh.cancel()
      stream.close()
    }
  }, [])

  if (error !== '') return html`<${ErrorBox} message=${error} />`
  if (targets === null) return html`<p class="muted">Loading targets…</p>`
  const queues = targets.some((t) => t.queues !== undefined)
  const beats = targets.some((t) => t.lastHeartbeatAt !== undefined)
  const live = targets.filter((t) => t.live).length
  return html`<section>
    <header class="pagehead">
      <h1>Targets</h1>
      <p class="meta">
        <span>${live} live of ${targets.length}</span>
        ${globalQueue === undefined ? null : html`<span data-queue="global">${globalQueue} in the global queue</span>`}
      </p>
    </header>
    <table class="grid targets">
      <thead>
        <tr>
          <th>Target</th>
          <th>Kind</th>
          <th>Status</th>
          <th class="num" title="how many jobs it runs at once">Slots</th>
          <th class="num">Running</th>
          ${queues ? html`<th class="num" title="first local / second local queue">Queues</th>` : null}
          ${beats ? html`<th class="num">Heartbeat</th>` : null}
          <th>Runs</th>
          <th>Labels</th>
          <th>Projects</th>
          <th>Problem</th>
        </tr>
      </thead>
      <tbody>
        ${targets.map(
          (t) =>
            html`<tr data-target=${t.target.id} data-live=${t.live}>
              <td><code>${t.target.id}</code></td>
              <td>${t.target.kind}</td>
              <td>
                <span class=${`pill ${t.live ? 'live' : 'lost'}`}>${t.live ? 'live' : 'lost'}</span>
              </td>
              <td class="num">${t.target.availability}</td>
              <td class="num">${t.running}</td>
              ${
                queues
                  ? html`<td class="num">
                      ${t.queues === undefined ? '' : `${t.queues.firstLocal ?? 0} / ${t.queues.secondLocal ?? 0}`}
                    </td>`
                  : null
              }
              ${
                beats
                  ? html`<td class="num">
                      ${t.lastHeartbeatAt === undefined ? '' : `${age(t.lastHeartbeatAt)} ago`}
                    </td>`
                  : null
              }
              <td>${(t.target.runs ?? []).join(', ')}</td>
              <td><${Labels} labels=${t.target.labels} /></td>
              <td>${t.target.projects.join(', ')}</td>
              <td class="problem">${t.problem ?? ''}</td>
            </tr>`,
        )}
      </tbody>
    </table>
    ${targets.length === 0 ? html`<p class="empty">No target has registered yet.</p>` : null}
  </section>`
}
