/**
 * What a job is told through its environment, on every kind of target: the resources it uses
 * and where it reports its artefacts. The worker's `exec` jobs and a cluster's Pods get the same
 * variables from here, so a job reads them the same way wherever it runs.
 */
import type { Resource } from './model.ts'

/**
 * The variable a resource's value is given under: `LOCKSTEP_RESOURCE_` and the key in capitals,
 * each character other than a letter or a digit turned into `_` (`gpu.model` →
 * `LOCKSTEP_RESOURCE_GPU_MODEL`). Packets whose keys would share a variable are refused.
 */
export function resourceVariable(key: string): string {
  return `LOCKSTEP_RESOURCE_${key.toUpperCase().replace(/[^A-Z0-9]/g, '_')}`
}

/** The variables of a job's resources, unique ones included: each key's value under its name. */
export function resourceVariables(resources: readonly Resource[]): Record<string, string> {
  const env: Record<string, string> = {}
  for (const r of resources) env[resourceVariable(r.key)] = r.value
  return env
}

/** The most artefacts one attempt reports. */
export const MAX_ARTEFACTS = 100

/** The longest artefact URL. */
export const MAX_ARTEFACT_LENGTH = 2048

/** True for an artefact's URL: absolute, with a scheme (`https:`, `s3:`, `gs:`, …), no spaces. */
export function isArtefactUrl(text: string): boolean {
  return (
    text.length <= MAX_ARTEFACT_LENGTH &&
    /^[a-zA-Z][a-zA-Z0-9+.-]*:\S+$/.test(text) &&
    URL.canParse(text)
  )
}

/**
 * Reads the artefacts a job reports: a JSON object `{"artefacts": ["https://…", …]}` (what a Pod
 * writes to `/dev/termination-log`), a JSON array of URLs, or one URL per line (what an `exec`
 * job writes to the file named by `LOCKSTEP_ARTEFACTS`). Empty text reports none. Answers the
 * URLs, or a problem a person can act on.
 */
export function parseArtefacts(
  text: string,
): { ok: true; artefacts: string[] } | { ok: false; problem: string } {
  const trimmed = text.trim()
  if (trimmed === '') return { ok: true, artefacts: [] }
  let list: unknown
  if (trimmed.startsWith('{') || trimmed.startsWith('[')) {
    try {
      const parsed: unknown = JSON.parse(trimmed)
      list =
        Array.isArray(parsed) || parsed === null || typeof parsed !== 'object'
          ? parsed
          : (parsed as { artefacts?: unknown }).artefacts
    } catch (e) {
      return { ok: false, problem: `artefacts are not valid JSON: ${(e as Error).message}` }
    }
    if (!Array.isArray(list)) {
      return { ok: false, problem: 'artefacts must be {"artefacts": [URL, …]} or [URL, …]' }
    }
  } else {
    list = trimmed
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '')
  }
  const urls = list as unknown[]
  if (urls.length > MAX_ARTEFACTS) {
    return {
      ok: false,
      problem: `${urls.length} artefacts reported; the limit is ${MAX_ARTEFACTS}`,
    }
  }
  for (const [i, u] of urls.entries()) {
    if (typeof u !== 'string' || !isArtefactUrl(u)) {
      return {
        ok: false,
        problem: `artefact ${i + 1} is not a URL of at most ${MAX_ARTEFACT_LENGTH} characters: ${JSON.stringify(u).slice(0, 80)}`,
      }
    }
  }
  return { ok: true, artefacts: urls as string[] }
}
