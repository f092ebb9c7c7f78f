/**
 * The dashboard's shell: the header with the server's name and the views, the login, and hash
 * routing (`#/orders`, `#/orders/ID`, `#/jobs/ID`, `#/targets`).
 *
 * Login: an open server (no tokens) answers at once; a server with tokens answers 401 and the
 * page asks for one, keeps it for the tab (sessionStorage) and sends it as a bearer header.
 * `lockstep up` prints a link with `#token=…`: the page takes the token from the fragment (never
 * sent to the server) and drops the fragment from the address.
 */
import { render } from 'preact'
import { useEffect, useState } from 'preact/hooks'
import { ApiError, get, setToken, token } from './api.js'
import { ErrorBox, html } from './ui.js'
import { JobView } from './views/job.js'
import { OrderView } from './views/order.js'
import { OrdersView } from './views/orders.js'
import { TargetsView } from './views/targets.js'

/** @returns {string} */
function currentRoute() {
  return location.hash.replace(/^#/, '') || '/orders'
}

function useRoute() {
  const [route, setRoute] = useState(currentRoute())
  useEffect(() => {
    const on = () => setRoute(currentRoute())
    addEventListener('hashchange', on)
    return () => removeEventListener('hashchange', on)
  }, [])
  return route
}

/** @param {{ onToken: (t: string) => void, error: string }} props */
function Login({ onToken, error }) {
  const [value, setValue] = useState('')
  /** @param {Event} e */
  const submit = (e) => {
    e.preventDefault()
    if (value.trim() !== '') onToken(value.trim())
  }
  return html`<div class="login">
    <form onSubmit=${submit} aria-label="Sign in">
      <h1>Lockstep</h1>
      <p class="muted">
        This scheduler asks for a token. Paste a workbench, viewer or admin token.
      </p>
      <input
        type="password"
        name="token"
        autocomplete="off"
        placeholder="Token"
        value=${value}
        onInput=${(/** @type {any} */ e) => setValue(e.currentTarget.value)}
      />
      <${ErrorBox} message=${error} />
      <button type="submit" class="primary">Sign in</button>
      <p class="muted small">
        The token is kept in this tab only. <code>lockstep up</code> prints a link that signs in.
      </p>
    </form>
  </div>`
}

/** @param {{ route: string }} props */
function View({ route }) {
  const [, kind, id] = route.split('/')
  if (kind === 'orders' && id) return html`<${OrderView} id=${decodeURIComponent(id)} />`
  if (kind === 'jobs' && id) return html`<${JobView} id=${decodeURIComponent(id)} />`
  if (kind === 'targets') return html`<${TargetsView} />`
  return html`<${OrdersView} />`
}

/** @param {{ route: string, signOut?: () => void }} props */
function Header({ route, signOut }) {
  const tab = route.startsWith('/targets') ? 'targets' : 'orders'
  return html`<header class="top">
    <a class="brand" href="#/orders"><span class="mark" />Lockstep</a>
    <span class="server" title="the scheduler this page talks to">${location.host}</span>
    <nav>
      <a href="#/orders" class=${tab === 'orders' ? 'on' : ''}>Orders</a>
      <a href="#/targets" class=${tab === 'targets' ? 'on' : ''}>Targets</a>
    </nav>
    <span class="spacer" />
    <a class="muted small" href="/openapi.json" target="_blank" rel="noopener noreferrer">API</a>
    ${signOut === undefined ? null : html`<button class="link" onClick=${signOut}>Sign out</button>`}
  </header>`
}

function App() {
  const route = useRoute()
  const [auth, setAuth] = useState(/** @type {'checking' | 'in' | 'out'} */ ('checking'))
  const [error, setError] = useState('')

  const check = () =>
    get('/v1/orders?limit=1')
      .then(() => setAuth('in'))
      .catch((e) => {
        if (e instanceof ApiError && e.status === 401) {
          if (token() !== null) setError('That token was refused.')
          setToken(null)
          setAuth('out')
        } else if (e instanceof ApiError && e.status === 403) setAuth('in')
        else setError(e.message)
      })

  useEffect(() => void check(), [])

  if (auth === 'checking') {
    return error === ''
      ? html`<p class="boot">Connecting…</p>`
      : html`<${ErrorBox} message=${error} />`
  }
  if (auth === 'out') {
    return html`<${Login}
      error=${error}
      onToken=${(/** @type {string} */ t) => {
        setToken(t)
        setError('')
        void check()
      }}
    />`
  }
  const signOut =
    token() === null
      ? undefined
      : () => {
          setToken(null)
          setAuth('out')
        }
  return html`<${Header} route=${route} signOut=${signOut} />
    <main><${View} key=${route} route=${route} /></main>`
}

// A token in the fragment is taken before anything renders, and the fragment dropped at once.
const given = /^#token=([^&]+)/.exec(location.hash)
if (given !== null) {
  setToken(decodeURIComponent(given[1]))
  history.replaceState(null, '', `${location.pathname}#/orders`)
}

const root = document.getElementById('app')
if (root !== null) {
  root.textContent = ''
  render(html`<${App} />`, root)
}
