/**
 * The orders table: search, state and owner filters, sort, paging, refreshed live.
 *
 * The list route may or may not take the filters (`state`, `owner`, `q`, `sort`, `cursor`): they
 * are sent only to a server whose OpenAPI document lists them, and only when the user sets them;
 * an older server (which refuses unknown query parameters) gets the plain list, filtered and
 * sorted here instead. The same for the fields: a `source` shows when the server sends it.
 */
import { useEffect, useMemo, useState } from 'preact/hooks'
import { follow, offers, request, throttle } from '../api.js'
import { ErrorBox, Pill, Progress, age, html, shortId } from '../ui.js'
import { Glance } from './glance.js'

const PAGE = 50
const ORDER_STATES = ['running', 'succeeded', 'failed', 'cancelled']

/**
 * @typedef {{ q: string, states: string[], owner: string, sort: 'created' | 'priority' }} Filter
 */

/**
 * Filters and sorts a plain list the way the server would.
 * @param {any[]} orders
 * @param {Filter} f
 */
function filterHere(orders, f) {
  const q = f.q.trim().toLowerCase()
  const out = orders.filter(
    (o) =>
      (f.states.length === 0 || f.states.includes(o.state)) &&
      (f.owner === '' || o.owner === f.owner) &&
      (q === '' ||
        o.orderId.toLowerCase().includes(q) ||
        o.owner.toLowerCase().includes(q) ||
        String(o.source?.name ?? '')
          .toLowerCase()
          .includes(q)),
  )
  if (f.sort === 'priority')
    out.sort((a, b) => b.priority - a.priority || b.createdAt - a.createdAt)
  return out
}

const FILTERS = ['state', 'owner', 'q', 'sort', 'cursor']

/**
 * One page of orders. A server whose list takes the filters (its OpenAPI document says) filters
 * and pages; for any other the newest thousand are fetched and filtered here.
 * @param {Filter} f
 * @param {string | undefined} cursor
 */
async function fetchPage(f, cursor) {
  const api = await offers()
  const served = FILTERS.every((p) => api.takes('/v1/orders', p))
  const params = new URLSearchParams({ limit: String(served ? PAGE : 1000) })
  if (served) {
    if (f.states.length > 0) params.set('state', f.states.join(','))
    if (f.owner !== '') params.set('owner', f.owner)
    if (f.q.trim() !== '') params.set('q', f.q.trim())
    if (f.sort !== 'created') params.set('sort', f.sort)
    if (cursor !== undefined) params.set('cursor', cursor)
  }
  const { data, headers } = await request(`/v1/orders?${params}`)
  if (!served) return { orders: filterHere(data, f), all: data, next: undefined, total: undefined }
  const total = headers.get('lockstep-total')
  return {
    orders: /** @type {any[]} */ (data),
    all: /** @type {any[]} */ (data),
    next: headers.get('lockstep-next-cursor') ?? undefined,
    total: total === null ? undefined : Number(total),
  }
}

export function OrdersView() {
  const [filter, setFilter] = useState(
    /** @type {Filter} */ ({ q: '', states: [], owner: '', sort: 'created' }),
  )
  const [cursors, setCursors] = useState(/** @type {(string | undefined)[]} */ ([undefined]))
  const [page, setPage] = useState(
    /** @type {{ orders: any[], next?: string, total?: number } | null} */ (null),
  )
  const [error, setError] = useState('')
  const [tick, setTick] = useState(0)
  const [owners, setOwners] = useState(/** @type {string[]} */ ([]))

  const usesFilters =
    filter.q !== '' || filter.states.length > 0 || filter.owner !== '' || filter.sort !== 'created'
  const cursor = cursors[cursors.length - 1]
  useEffect(() => {
    let stale = false
    fetchPage(filter, cursor)
      .then((p) => {
        if (stale) return
        setError('')
        setPage(p)
        setOwners((known) => [...new Set([...known, ...p.all.map((o) => o.owner)])].sort())
      })
      .catch((e) => !stale && setError(e.message))
    return () => void (stale = true)
  }, [filter, cursor, tick])

  // Live: every order event refreshes the table, at most once a second. A workbench may not
  // follow every order: then the table is polled every five seconds.
  useEffect(() => {
    const refresh = throttle(() => setTick((t) => t + 1), 1000)
    let poll = /** @type {ReturnType<typeof setInterval> | undefined} */ (undefined)
    const stream = follow(
      '/v1/events',
      (type) => {
        if (type.startsWith('order:') || type.startsWith('job:')) refresh()
      },
      (live) => {
        if (!live && poll === undefined) poll = setInterval(refresh, 5000)
        if (live && poll !== undefined) poll = void clearInterval(poll)
      },
    )
    return () => {
      stream.close()
      refresh.cancel()
      if (poll !== undefined) clearInterval(poll)
    }
  }, [])

  /** @param {Partial<Filter>} change */
  const set = (change) => {
    setCursors([undefined])
    setFilter((f) => ({ ...f, ...change }))
  }
  /** @param {string} s */
  const toggle = (s) =>
    set({
      states: filter.states.includes(s)
        ? filter.states.filter((x) => x !== s)
        : [...filter.states, s],
    })

  const shown = useMemo(() => page?.orders ?? [], [page])
  // The source is a newer field: its column shows once the server sends it.
  const sources = shown.some((o) => o.source !== undefined)
  return html`<section>
    <${Glance} />
    <div class="toolbar">
      <input
        type="search"
        placeholder="Search id, owner, source…"
        value=${filter.q}
        onInput=${(/** @type {any} */ e) => set({ q: e.currentTarget.value })}
        aria-label="Search orders"
      />
      <div class="chips" role="group" aria-label="State">
        ${ORDER_STATES.map(
          (s) =>
            html`<button
              class=${`chip ${filter.states.includes(s) ? 'on' : ''}`}
              aria-pressed=${filter.states.includes(s)}
              onClick=${() => toggle(s)}
            >
              ${s}
            </button>`,
        )}
      </div>
      ${
        owners.length > 1 || filter.owner !== ''
          ? html`<select
              aria-label="Owner"
              value=${filter.owner}
              onChange=${(/** @type {any} */ e) => set({ owner: e.currentTarget.value })}
            >
              <option value="">every owner</option>
              ${owners.map((o) => html`<option value=${o}>${o}</option>`)}
            </select>`
          : null
      }
      <select
        aria-label="Sort"
        value=${filter.sort}
        onChange=${(/** @type {any} */ e) => set({ sort: e.currentTarget.value })}
      >
        <option value="created">newest first</option>
        <option value="priority">highest priority first</option>
      </select>
      <span class="muted small">
        ${page === null ? '' : `${shown.length}${page.total === undefined ? '' : ` of ${page.total}`} orders`}
      </span>
    </div>
    <${ErrorBox} message=${error} />
    <table class="grid orders">
      <thead>
        <tr>
          <th>Order</th>
          <th>Owner</th>
          ${sources ? html`<th>Source</th>` : null}
          <th class="num">Prio</th>
          <th>State</th>
          <th class="wide">Progress</th>
          <th class="num">Age</th>
        </tr>
      </thead>
      <tbody>
        ${shown.map(
          (o) =>
            html`<tr data-order=${o.orderId} data-state=${o.state}>
              <td>
                <a class="id" href=${`#/orders/${o.orderId}`} title=${o.orderId}
                  >${shortId(o.orderId)}</a
                >
              </td>
              <td>${o.owner}</td>
              ${
                sources
                  ? html`<td>
                      ${
                        o.source === undefined
                          ? null
                          : html`<span class="muted">${o.source.kind}</span> ${o.source.name}`
                      }
                    </td>`
                  : null
              }
              <td class="num">${o.priority}</td>
              <td><${Pill} state=${o.state} /></td>
              <td class="wide"><${Progress} counts=${o.counts} total=${o.total} /></td>
              <td class="num" title=${new Date(o.createdAt).toLocaleString()}>
                ${age(o.createdAt)}
              </td>
            </tr>`,
        )}
      </tbody>
    </table>
    ${page !== null && shown.length === 0 ? html`<p class="empty">No orders${usesFilters ? ' match' : ' yet'}.</p>` : null}
    <div class="pager">
      <button disabled=${cursors.length === 1} onClick=${() => setCursors((c) => c.slice(0, -1))}>
        ← Newer
      </button>
      <button
        disabled=${page?.next === undefined}
        onClick=${() => setCursors((c) => [...c, page?.next])}
      >
        Older →
      </button>
    </div>
  </section>`
}
