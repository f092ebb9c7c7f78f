/**
 * At a glance: jobs by state (`GET /v1/stats`) and a sparkline of running, ready and waiting
 * jobs over the last while (`GET /v1/stats/history`). A server whose API document lists neither
 * shows no panel at all.
 */
import { useEffect, useState } from 'preact/hooks'
import { get, offers } from '../api.js'
import { JOB_STATES, html } from '../ui.js'

const SERIES = ['running', 'ready', 'waiting']

/**
 * The job counts of a stats answer, wherever it keeps them (`jobs` or the top level).
 * @param {any} stats
 * @returns {[string, number][]}
 */
function countsOf(stats) {
  const jobs = stats?.jobs ?? stats
  if (typeof jobs !== 'object' || jobs === null) return []
  return JOB_STATES.filter((s) => typeof jobs[s] === 'number').map((s) => [s, jobs[s]])
}

/** @param {{ points: any[] }} props */
function Sparkline({ points }) {
  const w = 240
  const h = 40
  const max = Math.max(1, ...points.flatMap((p) => SERIES.map((s) => p.jobs?.[s] ?? 0)))
  const x = (/** @type {number} */ i) => (points.length < 2 ? 0 : (i * w) / (points.length - 1))
  const y = (/** @type {number} */ v) => h - 2 - (v * (h - 4)) / max
  return html`<svg class="spark" viewBox=${`0 0 ${w} ${h}`} width=${w} height=${h} role="img">
    <title>running, ready and waiting jobs over time</title>
    ${SERIES.map(
      (s) =>
        html`<polyline
          class=${`line state-${s}`}
          points=${points.map((p, i) => `${x(i).toFixed(1)},${y(p.jobs?.[s] ?? 0).toFixed(1)}`).join(' ')}
        />`,
    )}
  </svg>`
}

/** The latest point of the history in words: throughput and the median commit time. */
function trendText(/** @type {any} */ last) {
  const commit = typeof last.commitMs === 'number' ? `${last.commitMs.toFixed(1)} ms` : '—'
  return `${Number(last.succeededPerS).toFixed(1)} succeeded/s · ${Number(last.failedPerS ?? 0).toFixed(1)} failed/s · commit ${commit}`
}

export function Glance() {
  const [stats, setStats] = useState(/** @type {any} */ (null))
  const [history, setHistory] = useState(/** @type {any[]} */ ([]))
  const [absent, setAbsent] = useState(false)

  useEffect(() => {
    let stop = false
    const load = async () => {
      const api = await offers()
      if (!api.has('/v1/stats')) return setAbsent(true)
      try {
        const s = await get('/v1/stats')
        if (stop) return
        setStats(s)
        if (!api.has('/v1/stats/history')) return
        const h = await get('/v1/stats/history')
        if (!stop) setHistory(Array.isArray(h) ? h : (h?.points ?? []))
      } catch {
        if (!stop) setAbsent(true)
      }
    }
    void load()
    const timer = setInterval(() => void load(), 5000)
    // A server without the routes never gets them: the panel stays away.
    return () => {
      stop = true
      clearInterval(timer)
    }
  }, [])

  const counts = countsOf(stats)
  if (absent || counts.length === 0) return null
  const last = history.at(-1)
  return html`<div class="glance" data-panel="glance">
    ${counts.map(
      ([s, n]) =>
        html`<div class="stat">
          <span class=${`dot state-${s}`} /><b>${n}</b><small>${s}</small>
        </div>`,
    )}
    ${
      history.length > 1
        ? html`<div class="stat trend">
            <${Sparkline} points=${history} />
            ${last?.succeededPerS === undefined ? null : html`<small>${trendText(last)}</small>`}
          </div>`
        : null
    }
  </div>`
}
