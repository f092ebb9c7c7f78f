/**
 * The scheduler's figures for the dashboard and for scripts: the numbers `/metrics` shows, as
 * JSON, and their last hour. Every role but a worker may read them.
 */
import { statsHistorySchema, statsSchema } from '../../core/api.ts'
import { addRoute } from '../route.ts'
import type { RouteContext } from '../route.ts'

export function statsRoutes({ app, callerOf, service }: RouteContext): void {
  addRoute(app, callerOf, {
    method: 'GET',
    url: '/v1/stats',
    summary: 'Jobs in flight by state, queue depths, orders in flight and live targets',
    roles: ['workbench', 'viewer'],
    response: statsSchema,
    handler: () => service.overview(),
  })

  addRoute(app, callerOf, {
    method: 'GET',
    url: '/v1/stats/history',
    summary:
      'The last hour at 10 s resolution, oldest first: jobs running, ready and waiting, jobs succeeded and failed per second, the median commit time',
    roles: ['workbench', 'viewer'],
    response: statsHistorySchema,
    handler: () => service.statsHistory(),
  })
}
