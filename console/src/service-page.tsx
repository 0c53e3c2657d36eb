import { useState } from 'preact/hooks';
import type { AdminApi, ApiError, Endpoint, Service } from './api.js';
import { EndpointCharts } from './charts.js';
import { formatTime } from './format.js';
import { usePoll } from './hooks.js';
import { href, navigate } from './router.js';
import { ServiceControls } from './service-controls.js';
import { TokensPanel } from './tokens-panel.js';
import { ErrorBanner, StatusBadge } from './ui.js';

/**
 * A service's routing page: its endpoint, the routes table (one route per replica: status,
 * address, restarts, last error), live charts and the tokens.
 */
export function ServicePage(props: { api: AdminApi; name: string }) {
  const { api, name } = props;
  // Both are read together so the routes table never mixes two moments.
  const state = usePoll(
    async () => {
      const [service, endpoint] = await Promise.all([api.getService(name, 20), api.getEndpoint(name).catch(() => null as Endpoint | null)]);
      return { service, endpoint };
    },
    2000,
    [api, name],
  );
  const [actionError, setActionError] = useState<ApiError | null>(null);
  const [showLogs, setShowLogs] = useState<string | null>(null);
  const service: Service | undefined = state.data?.service;
  const routeUrls = new Map((state.data?.endpoint?.routes ?? []).map((r) => [r.id, r.url]));

  if (!service) {
    return (
      <section>
        <p class="crumbs">
          <a href={href({ page: 'services' })}>‹ Back to the list</a>
        </p>
        {state.error ? <ErrorBanner error={state.error} prefix={`Service ${name}`} /> : <p>Loading…</p>}
      </section>
    );
  }

  const auto = service.autoscaling;
  return (
    <section aria-labelledby="service-title">
      <p class="crumbs">
        <a href={href({ page: 'services' })}>‹ Back to the list</a>
      </p>
      <div class="page-head">
        <div>
          <h1 id="service-title">
            {service.name} <StatusBadge status={service.status} />
          </h1>
          <p class="lede">
            {service.model_name ?? 'model'} from <code>{service.model_folder}</code>
            {service.model_definition_path ? (
              <>
                {' '}
                (<code>{service.model_definition_path}</code>)
              </>
            ) : null}
          </p>
        </div>
        <ServiceControls api={api} service={service} onChanged={() => void state.reload()} onTerminated={() => navigate({ page: 'services' })} onError={setActionError} />
      </div>
      <ErrorBanner error={state.error} prefix="Could not refresh" />
      <ErrorBanner error={actionError} />
      {service.error && (
        <div class="banner error" role="alert">
          The model definition cannot be read: {service.error}. Fix the file, then use <strong>Clear error and Retry</strong>.
        </div>
      )}

      <div class="card">
        <dl class="facts">
          <div>
            <dt>Endpoint URL</dt>
            <dd>{service.url ? <code class="url">{service.url}</code> : '—'}</dd>
          </div>
          <div>
            <dt>Access</dt>
            <dd>{service.public ? 'Open to public (no token needed)' : 'Token required'}</dd>
          </div>
          <div>
            <dt>Healthy / desired replicas</dt>
            <dd>
              {service.healthy_replicas} / {service.replicas}
            </dd>
          </div>
          <div>
            <dt>Autoscaling</dt>
            <dd>
              {auto
                ? `${auto.min_replicas}–${auto.max_replicas} replicas, ${auto.target_in_flight} in flight each` +
                  (auto.status?.last_decision ? ` · last: ${auto.status.last_decision.from} → ${auto.status.last_decision.to} (${auto.status.last_decision.reason})` : '')
                : 'off (fixed count)'}
            </dd>
          </div>
          <div>
            <dt>Resources</dt>
            <dd>
              {service.resources ? [service.resources.cpu !== undefined ? `${service.resources.cpu} CPU` : '', service.resources.memory !== undefined ? `${service.resources.memory} memory` : ''].filter(Boolean).join(', ') : 'unlimited'}
            </dd>
          </div>
          <div>
            <dt>Created</dt>
            <dd>{formatTime(service.created_at)}</dd>
          </div>
        </dl>
      </div>

      <section class="card" aria-labelledby="routes-title">
        <div class="card-head">
          <h2 id="routes-title">Routes</h2>
        </div>
        <table aria-label="Routes">
          <thead>
            <tr>
              <th scope="col">Route ID</th>
              <th scope="col">Status</th>
              <th scope="col">Address</th>
              <th scope="col">Restarts</th>
              <th scope="col">Last error</th>
              <th scope="col">
                <span class="sr-only">Log</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {service.routes.map((r) => (
              <tr key={r.id}>
                <td>
                  <code>{r.id}</code>
                </td>
                <td>
                  <StatusBadge status={r.status} />
                </td>
                <td>
                  <code>{routeUrls.get(r.id) ?? (r.port ? `127.0.0.1:${r.port}` : '—')}</code>
                  {r.pid ? <span class="hint"> pid {r.pid}</span> : null}
                </td>
                <td class="num">{r.restarts}</td>
                <td class={r.last_error ? 'last-error' : ''}>{r.last_error ?? '—'}</td>
                <td class="actions">
                  {r.log_tail && r.log_tail.length > 0 && (
                    <button type="button" class="small" aria-expanded={showLogs === r.id} onClick={() => setShowLogs(showLogs === r.id ? null : r.id)}>
                      {showLogs === r.id ? 'Hide log' : 'Log'}
                    </button>
                  )}
                </td>
              </tr>
            ))}
            {service.routes.length === 0 && (
              <tr>
                <td colSpan={6} class="empty">
                  No route: {service.replicas === 0 ? 'scaled to zero' : 'replicas are being started'}.
                </td>
              </tr>
            )}
          </tbody>
        </table>
        {showLogs && (
          <pre class="log" aria-label={`Log of route ${showLogs}`} role="log">
            {service.routes.find((r) => r.id === showLogs)?.log_tail?.join('\n') ?? ''}
          </pre>
        )}
      </section>

      <EndpointCharts api={api} endpoint={name} />
      <TokensPanel api={api} endpoint={name} isPublic={service.public} />
    </section>
  );
}
