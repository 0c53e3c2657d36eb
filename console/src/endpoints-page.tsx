import type { AdminApi } from './api.js';
import { formatTime } from './format.js';
import { usePoll } from './hooks.js';
import { href } from './router.js';
import { ErrorBanner } from './ui.js';

/** Every endpoint: the services' own and those whose route tables another control plane pushes. */
export function EndpointsPage(props: { api: AdminApi }) {
  const { api } = props;
  const list = usePoll(
    async () => {
      const [endpoints, services] = await Promise.all([api.listEndpoints(), api.listServices().catch(() => [])]);
      return { endpoints, services: new Set(services.map((s) => s.name)) };
    },
    3000,
    [api],
  );
  return (
    <section aria-labelledby="endpoints-title">
      <div class="page-head">
        <div>
          <h1 id="endpoints-title">Endpoints</h1>
          <p class="lede">Permanent addresses. Model services manage their own routes; other endpoints carry the route tables a control plane pushes, editable here.</p>
        </div>
      </div>
      <ErrorBanner error={list.error} prefix="Could not refresh the list" />
      <div class="card">
        <table aria-label="Endpoints">
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Managed by</th>
              <th scope="col">Access</th>
              <th scope="col">Healthy / routes</th>
              <th scope="col">Version</th>
              <th scope="col">URL</th>
              <th scope="col">Updated</th>
            </tr>
          </thead>
          <tbody>
            {list.data?.endpoints.map((e) => {
              const isService = list.data!.services.has(e.name);
              return (
                <tr key={e.name}>
                  <th scope="row">
                    <a href={href(isService ? { page: 'service', name: e.name } : { page: 'endpoint', name: e.name })}>{e.name}</a>
                  </th>
                  <td>{isService ? 'model service' : 'route table'}</td>
                  <td>{e.public ? <span class="tag">public</span> : 'token'}</td>
                  <td class="num">
                    {e.routes.filter((r) => r.status === 'healthy').length} / {e.routes.length}
                  </td>
                  <td class="num">{e.version}</td>
                  <td>
                    <code class="url">{e.url}</code>
                  </td>
                  <td>{formatTime(e.updated_at)}</td>
                </tr>
              );
            })}
            {list.data?.endpoints.length === 0 && (
              <tr>
                <td colSpan={7} class="empty">
                  No endpoint yet.
                </td>
              </tr>
            )}
          </tbody>
        </table>
      </div>
    </section>
  );
}
