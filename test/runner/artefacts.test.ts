/**
 * An `exec` job reports its artefacts in the file `$LOCKSTEP_ARTEFACTS` names: one URL a line, a
 * JSON array, or `{"artefacts": [...]}`. The runner puts them in the attempt's result; a list it
 * cannot read or parse fails the attempt with reason `artefacts`, even after exit code 0.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import type { Assignment } from '../../src/core/protocol.ts'
import { runJob } from '../../src/runner/run-job.ts'

const REPORT = 'https://example.com/runs/7/report.html'
const MODEL = 's3://bucket/runs/7/model.pt'

function assignment(script: string, timeoutMs?: number): Assignment {
  return {
    orderId: 'o1',
    jobId: 'j1',
    productId: 'j1',
    name: 'publish',
    attempt: 1,
    target: 'w1',
    op: { exec: ['sh', '-c', script] },
    resources: [],
    timeoutMs,
    inputs: [],
  }
}

describe('artefacts of an exec job', () => {
  let dir: string

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'lockstep-artefacts-'))
    mkdirSync(join(dir, 'inputs'))
  })

  afterEach(() => {
    rmSync(dir, { recursive: true, force: true })
  })

  const run = (script: string, timeoutMs?: number) =>
    runJob(assignment(script, timeoutMs), { dir, data: {} }).result

  it.each([
    { form: 'one URL a line', text: `${REPORT}\\n\\n${MODEL}\\n` },
    { form: 'a JSON array', text: JSON.stringify([REPORT, MODEL]) },
    { form: 'a JSON object', text: JSON.stringify({ artefacts: [REPORT, MODEL] }) },
  ])('are read from $form', async ({ text }) => {
    const result = await run(`printf '%b' '${text}' > "$LOCKSTEP_ARTEFACTS"`)
    expect(result).toEqual({ ok: true, exitCode: 0, artefacts: [REPORT, MODEL] })
  })

  it('are none when the job writes no file, or an empty one', async () => {
    expect(await run('true')).toEqual({ ok: true, exitCode: 0 })
    expect(await run(': > "$LOCKSTEP_ARTEFACTS"')).toEqual({ ok: true, exitCode: 0 })
  })

  it('live beside the product, not in it', async () => {
    await run(`echo ${REPORT} > "$LOCKSTEP_ARTEFACTS"`)
    expect(existsSync(join(dir, 'artefacts'))).toBe(true)
    expect(existsSync(join(dir, 'out', 'artefacts'))).toBe(false)
  })

  it.each([
    {
      what: 'a line that is no URL',
      script: `printf '%s\\n' ${REPORT} 'see the wiki' > "$LOCKSTEP_ARTEFACTS"`,
      message: /^artefact 2 is not a URL/,
    },
    {
      what: 'broken JSON',
      script: `echo '["${REPORT}",' > "$LOCKSTEP_ARTEFACTS"`,
      message: /^artefacts are not valid JSON/,
    },
    {
      what: 'a JSON object of another shape',
      script: `echo '{"urls": ["${REPORT}"]}' > "$LOCKSTEP_ARTEFACTS"`,
      message: /^artefacts must be/,
    },
    {
      what: 'more than 100',
      script: `for i in $(seq 101); do echo "https://example.com/$i"; done > "$LOCKSTEP_ARTEFACTS"`,
      message: /^101 artefacts reported; the limit is 100/,
    },
    {
      what: 'a link to a file of the agent',
      script: 'ln -s /etc/hostname "$LOCKSTEP_ARTEFACTS"',
      message: /must be a file, not a link/,
    },
    {
      what: 'a FIFO, which would hang a read',
      script: 'mkfifo "$LOCKSTEP_ARTEFACTS"',
      message: /must be a plain file/,
    },
  ])(
    'that do not parse fail the attempt with reason artefacts: $what',
    async ({ script, message }) => {
      const result = await run(script)
      expect(result).toMatchObject({ ok: false, reason: 'artefacts' })
      expect(result.message).toMatch(message)
      expect(result).not.toHaveProperty('artefacts')
    },
  )

  it('stay with a job that fails, whose own failure comes first', async () => {
    expect(await run(`echo ${REPORT} > "$LOCKSTEP_ARTEFACTS"; echo boom >&2; exit 3`)).toEqual({
      ok: false,
      exitCode: 3,
      message: 'boom',
      artefacts: [REPORT],
    })
    expect(await run(`echo nonsense > "$LOCKSTEP_ARTEFACTS"; exit 4`)).toMatchObject({
      ok: false,
      exitCode: 4,
    })
  })

  it('are not read from a job stopped from outside', async () => {
    const result = await run(`echo nonsense > "$LOCKSTEP_ARTEFACTS"; sleep 5`, 200)
    expect(result).toMatchObject({ ok: false, reason: 'timeout' })
  })
})
