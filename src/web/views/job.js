/**
 * One job: why it waits (the server's sentence when it sends one, else its reason in words), its
 * attempts with their targets, exit codes, messages and artefacts, its inputs, and a cancel
 * button. Refreshed on the events of its order that concern it.
 */
import { useEffect, useState } from 'preact/hooks'
import { follow, get, post, throttle } from '../api.js'
import { readOutput } from '../product-output.js'
import { ErrorBox, Pill, describeWait, duration, html, shortId, time } from '../ui.js'

/** Only web links become links; anything else an attempt reports is shown as text. */
const isWeb = (/** @type {string} */ url) => /^https?:\/\//i.test(url)

/** @param {any} op */
function operation(op) {
  if (op.builtin !== undefined) return `builtin ${op.builtin}`
  if (op.exec !== undefined) return `exec ${op.exec.join(' ')}`
  if (op.image !== undefined)
    return `image ${op.image}${op.command ? ` ${op.command.join(' ')}` : ''}`
  return JSON.stringify(op)
}

/** @param {{ attempts: any[] }} props */
function Attempts({ attempts }) {
  if (attempts.length === 0) return html`<p class="muted">No attempt yet.</p>`
  return html`<table class="grid">
    <thead>
      <tr>
        <th class="num">#</th>
        <th>Target</th>
        <th>State</th>
        <th>Started</th>
        <th>Took</th>
        <th>Reason</th>
        <th class="num">Exit</th>
        <th>Message and artefacts</th>
      </tr>
    </thead>
    <tbody>
      ${attempts.map((a) => {
        const started = a.transitions[0]?.at
        const ended = a.transitions.find((/** @type {any} */ t) => t.state !== 'running')?.at
        return html`<tr data-attempt=${a.attempt}>
          <td class="num">${a.attempt}</td>
          <td><code>${a.target}</code></td>
          <td><${Pill} state=${a.state} /></td>
          <td>${time(started)}</td>
          <td>${started === undefined ? '' : duration(started, ended)}</td>
          <td>${a.reason ?? ''}</td>
          <td class="num">${a.exitCode ?? ''}</td>
          <td>
            ${a.message === undefined ? null : html`<pre class="message">${a.message}</pre>`}
            ${(a.artefacts ?? []).map((/** @type {string} */ url) =>
              isWeb(url)
                ? html`<a class="artefact" href=${url} rel="noopener noreferrer" target="_blank"
                    >${url}</a
                  >`
                : html`<code class="artefact">${url}</code>`,
            )}
          </td>
        </tr>`
      })}
    </tbody>
  </table>`
}

/** @param {{ id: string }} props */
export function JobView({ id }) {
  const [detail, setDetail] = useState(/** @type {any} */ (null))
  const [error, setError] = useState('')
  const [actionError, setActionError] = useState('')

  useEffect(() => {
    let stop = false
    setDetail(null)
    get(`/v1/jobs/${encodeURIComponent(id)}`)
      .then((d) => !stop && (setDetail(d), setError('')))
      .catch((e) => !stop && setError(e.message))
    return () => void (stop = true)
  }, [id])

  // Follows the job's order once its id is known; reloads on the events about this job.
  const orderId = detail?.job.orderId
  useEffect(() => {
    if (orderId === undefined) return
    const refresh = throttle(() => {
      get(`/v1/jobs/${encodeURIComponent(id)}`)
        .then(setDetail)
        .catch(() => {})
    }, 500)
    const stream = follow(`/v1/events?order=${encodeURIComponent(orderId)}`, (type, data) => {
      if (data?.jobId === id || type === 'fulfilment') refresh()
      if (type === 'fulfilment' && data.state !== 'running') stream.close()
    })
    return () => {
      stream.close()
      refresh.cancel()
    }
  }, [orderId, id])

  const cancel = async () => {
    setActionError('')
    try {
      const job = await post(`/v1/jobs/${encodeURIComponent(id)}/cancel`)
      setDetail((/** @type {any} */ d) => ({ ...d, job }))
    } catch (e) {
      setActionError(`Cancel refused: ${/** @type {Error} */ (e).message}`)
    }
  }

  if (error !== '') return html`<${ErrorBox} message=${error} />`
  if (detail === null) return html`<p class="muted">Loading job…</p>`
  const { job, attempts, inputs, wait } = detail
  const open = ['waiting', 'ready', 'running'].includes(job.state)
  return html`<section class="job">
    <header class="pagehead">
      <div>
        <p class="crumbs">
          <a href=${`#/orders/${job.orderId}`}
            >Order <code class="id">${shortId(job.orderId)}</code></a
          >
          ›
        </p>
        <h1>${job.name} <${Pill} state=${job.state} /></h1>
        <p class="meta">
          <code class="id">${job.id}</code>
          <span>job #${job.index}</span>
          ${job.step === undefined ? null : html`<span>step ${job.step}</span>`}
          ${job.iteration === undefined ? null : html`<span>iteration ${job.iteration}</span>`}
          <span
            >${job.attempt === 0 ? 'not tried yet' : `attempt ${job.attempt} of ${job.failure.attempts}`}</span
          >
        </p>
      </div>
      <div class="actions">
        ${
          open
            ? html`<button class="danger" onClick=${cancel} data-action="cancel-job">
                Cancel job
              </button>`
            : null
        }
      </div>
    </header>
    <${ErrorBox} message=${actionError} />
    ${
      wait === undefined
        ? null
        : html`<div class="wait" data-wait=${wait.kind}>
            <h2>Why it waits</h2>
            <p>${describeWait(wait)}</p>
            ${
              wait.kind === 'locks'
                ? html`<p class="small">
                    ${wait.waitingFor.map(
                      (/** @type {string} */ j) =>
                        html`<a class="id" href=${`#/jobs/${j}`}>${shortId(j)}</a> `,
                    )}
                  </p>`
                : null
            }
          </div>`
    }
    ${job.reason === undefined ? null : html`<p class="reason">${job.reason}</p>`}
    <dl class="facts">
      <dt>Runs</dt>
      <dd><code>${operation(job.op)}</code></dd>
      <dt>Where</dt>
      <dd>
        ${job.policy.kind === 'strict' ? html`only on <code>${job.policy.target}</code>` : 'any target'}
      </dd>
      <dt>Resources</dt>
      <dd>
        ${
          job.uses.length === 0
            ? html`<span class="muted">none</span>`
            : job.uses.map(
                (/** @type {any} */ r) =>
                  html`<code class=${r.unique ? 'unique' : ''}
                    >${r.key}=${r.value}${r.unique ? ' (unique)' : ''}</code
                  > `,
              )
        }
      </dd>
      <dt>On failure</dt>
      <dd>
        ${`${job.failure.attempts} attempt${job.failure.attempts === 1 ? '' : 's'}, then ${
          job.failure.onExhausted === 'fail-order' ? 'fail the order' : 'skip its dependents'
        }`}
      </dd>
      ${
        job.project === undefined
          ? null
          : html`<dt>Project</dt>
              <dd>${job.project}</dd>`
      }
      ${
        job.cacheKey === undefined
          ? null
          : html`<dt>Cache key</dt>
              <dd><code>${job.cacheKey}</code></dd>`
      }
    </dl>
    <h2>Attempts</h2>
    <${Attempts} attempts=${attempts} />
    <h2>Inputs</h2>
    ${
      inputs.length === 0
        ? html`<p class="muted">No inputs: no job before it hands it a product.</p>`
        : html`<table class="grid">
            <thead>
              <tr>
                <th>Name</th>
                <th>From job</th>
                <th>Product</th>
                <th>Held by</th>
              </tr>
            </thead>
            <tbody>
              ${inputs.map(
                (/** @type {any} */ i) =>
                  html`<tr>
                    <td>${i.name}</td>
                    <td><a class="id" href=${`#/jobs/${i.jobId}`}>${shortId(i.jobId)}</a></td>
                    <td><code class="id">${shortId(i.productId)}</code></td>
                    <td>${i.holders.join(', ')}</td>
                  </tr>`,
              )}
            </tbody>
          </table>`
    }
    <h2>Output</h2>
    <${Output} job=${job} />
  </section>`
}

/**
 * The end of a succeeded job's stdout and stderr, from its product. A job that failed shows the
 * end of its stderr in its attempt's message; an image job leaves no product.
 * @param {{ job: any }} props
 */
function Output({ job }) {
  const [output, setOutput] = useState(/** @type {any} */ (null))
  const [error, setError] = useState(/** @type {any} */ (null))
  const makes = job.op?.image === undefined
  const ready = job.state === 'succeeded' && makes
  useEffect(() => {
    if (!ready) return undefined
    const abort = new AbortController()
    const product = job.cacheKey === undefined ? job.id : `cache:${job.cacheKey}`
    readOutput(product, abort.signal).then(setOutput, (e) => {
      if (!abort.signal.aborted) setError(e)
    })
    return () => abort.abort()
  }, [ready, job.id])
  if (!makes) {
    return html`<p class="muted small">
      An image job leaves no product: its output is in its Pod's logs.
    </p>`
  }
  if (!ready) {
    return html`<p class="muted small">
      Shown once the job has succeeded; a failed attempt's message above ends with its stderr.
    </p>`
  }
  if (error !== null) {
    return html`<p class="muted small" data-output="unavailable">
      ${error.message} — read it with <code>lockstep logs ${job.id}</code>.
    </p>`
  }
  if (output === null) return html`<p class="muted small">Reading its product…</p>`
  return html`<div class="output" data-output="shown">
    <h3>stdout</h3>
    <pre data-stream="stdout">${output.stdout === '' ? '(empty)' : output.stdout}</pre>
    ${
      output.stderr === ''
        ? null
        : html`<h3>stderr</h3>
            <pre data-stream="stderr">${output.stderr}</pre>`
    }
  </div>`
}
