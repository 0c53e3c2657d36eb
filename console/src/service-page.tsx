import { useState } from 'preact/hooks';
import type { AdminApi, ApiError, AutoscalingStatus, Endpoint, Service, ServiceEvent } from './api.js';
import { EndpointCharts } from './charts.js';
import { formatTime } from './format.js';
import { usePoll } from './hooks.js';
import { href, navigate } from './router.js';
import { ServiceControls } from './service-controls.js';
import { TokensPanel } from './tokens-panel.js';
import { ErrorBanner, StatusBadge } from './ui.js';

/**
 * A service's routing page: its endpoint, the routes table (one route per replica: status,
 * runtime, node / host, address, restarts, last error), the autoscaling status and recent
 * events, live charts and the tokens.
 */
export function ServicePage(props: { api: AdminApi; name: string }) {
  const { api, name } = props;
  // Read together so the routes table never mixes two moments. Events are optional: a server
  // without them (or a failed read) just leaves the list out.
  const state = usePoll(
    async () => {
      const [service, endpoint, events] = await Promise.all([
        api.getService(name, 20),
        api.getEndpoint(name).catch(() => null as Endpoint | null),
        api.serviceEvents(name, 10).catch(() => null as ServiceEvent[] | null),
      ]);
      return { service, endpoint, events };
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
            <dd>{auto ? `${auto.min_replicas}–${auto.max_replicas} replicas, ${auto.target_in_flight} in flight each` : 'off (fixed count)'}</dd>
          </div>
          <div>
            <dt>Runtime</dt>
            <dd>
              {service.runtime ?? 'process'}
              {service.image ? (
                <>
                  {' · '}
                  <code>{service.image}</code>
                </>
              ) : null}
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
              <th scope="col">Runtime</th>
              <th scope="col">Node / host</th>
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
                <td>{r.runtime ?? '—'}</td>
                <td>{nodeAndHost(r.node, r.host)}</td>
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
                <td colSpan={8} class="empty">
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

      {(auto?.status || (state.data?.events?.length ?? 0) > 0) && <ScalingCard status={auto?.status} events={state.data?.events ?? []} />}

      <EndpointCharts api={api} endpoint={name} />
      <TokensPanel api={api} endpoint={name} isPublic={service.public} />
    </section>
  );
}

/** "node / host", or one of them when the other is unknown or the same (a process replica). */
function nodeAndHost(node: string | null | undefined, host: string | null | undefined): string {
  if (node && host && node !== host) return `${node} / ${host}`;
  return node || host || '—';
}

/**
 * The controller's view of the count (desired vs current, the last decision and why) and the
 * service's recent events, newest first, so an operator sees why the replica count moved.
 */
function ScalingCard(props: { status?: AutoscalingStatus; events: ServiceEvent[] }) {
  const { status, events } = props;
  const last = status?.last_decision;
  return (
    <section class="card" aria-labelledby="scaling-title">
      <div class="card-head">
        <h2 id="scaling-title">{status ? 'Scaling and events' : 'Recent events'}</h2>
      </div>
      {status && (
        <p role="status" aria-label="Autoscaling status">
          Autoscaling: {last ? `${last.from} → ${last.to} ` : ''}(desired {status.desired ?? '—'}, current {status.current ?? '—'}){status.panicking ? ', panicking' : ''}
          {last ? ` — ${last.reason}, at ${formatTime(last.at)}` : ' — no decision yet'}
        </p>
      )}
      {events.length > 0 && (
        <ol class="events" aria-label="Recent events">
          {events.map((e, i) => (
            <li key={`${e.at}-${i}`}>
              <time dateTime={e.at}>{formatTime(e.at)}</time> <span class="badge muted">{e.kind}</span> {e.message}
            </li>
          ))}
        </ol>
      )}
    </section>
  );
}
