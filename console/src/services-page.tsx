import { useState } from 'preact/hooks';
import type { AdminApi, ApiError, Service } from './api.js';
import { usePoll } from './hooks.js';
import { href } from './router.js';
import { ServiceControls } from './service-controls.js';
import { ServiceForm } from './service-form.js';
import { ErrorBanner, StatusBadge } from './ui.js';

/** Model Serving: every service with its status, healthy/desired replicas and endpoint URL. */
export function ServicesPage(props: { api: AdminApi }) {
  const { api } = props;
  const services = usePoll(() => api.listServices(), 2000, [api]);
  const [starting, setStarting] = useState(false);
  const [actionError, setActionError] = useState<ApiError | null>(null);

  return (
    <section aria-labelledby="services-title">
      <div class="page-head">
        <div>
          <h1 id="services-title">Model Serving</h1>
          <p class="lede">Model services run by this gateway's controller. Each one has a permanent endpoint address.</p>
        </div>
        <button type="button" class="primary" onClick={() => setStarting(true)}>
          Start Service
        </button>
      </div>
      <ErrorBanner error={services.error} prefix="Could not refresh the list" />
      <ErrorBanner error={actionError} />
      <div class="card">
        <table aria-label="Services">
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Status</th>
              <th scope="col">Healthy / desired replicas</th>
              <th scope="col">Endpoint URL</th>
              <th scope="col">Controls</th>
            </tr>
          </thead>
          <tbody>
            {services.data?.map((svc: Service) => (
              <tr key={svc.name}>
                <th scope="row">
                  <a href={href({ page: 'service', name: svc.name })}>{svc.name}</a>
                  {svc.public && <span class="tag">public</span>}
                </th>
                <td>
                  <StatusBadge status={svc.status} />
                  {svc.error && <div class="cell-error">{svc.error}</div>}
                </td>
                <td class="num">
                  {svc.healthy_replicas} / {svc.replicas}
                </td>
                <td>{svc.url ? <code class="url">{svc.url}</code> : '—'}</td>
                <td>
                  <ServiceControls api={api} service={svc} onChanged={() => void services.reload()} onError={setActionError} />
                </td>
              </tr>
            ))}
            {services.data?.length === 0 && (
              <tr>
                <td colSpan={5} class="empty">
                  No service yet. Start one with <strong>Start Service</strong>.
                </td>
              </tr>
            )}
            {services.data === null && !services.error && (
              <tr>
                <td colSpan={5} class="empty">
                  Loading…
                </td>
              </tr>
            )}
          </tbody>
        </table>
      </div>
      {starting && (
        <ServiceForm
          api={api}
          service={null}
          onClose={() => setStarting(false)}
          onSaved={() => {
            // Stay on the list: the new row shows the service coming up.
            setStarting(false);
            void services.reload();
          }}
        />
      )}
    </section>
  );
}
