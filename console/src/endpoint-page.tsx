import { useEffect, useState } from 'preact/hooks';
import { ApiError, type AdminApi, type Endpoint } from './api.js';
import { EndpointCharts } from './charts.js';
import { asApiError, usePoll } from './hooks.js';
import { href } from './router.js';
import { TokensPanel } from './tokens-panel.js';
import { ErrorBanner, StatusBadge } from './ui.js';

const ROUTE_STATUSES = ['healthy', 'provisioning', 'unhealthy', 'terminating', 'failed_to_start'] as const;

interface Draft {
  weight: string;
  status: string;
}

/**
 * An endpoint whose route table is pushed (not a model service): public/private, and each
 * route's weight and status. Saved in one PUT with the version it was read at, so a table that
 * changed meanwhile is refused (409) rather than overwritten.
 */
export function EndpointPage(props: { api: AdminApi; name: string }) {
  const { api, name } = props;
  const ep = usePoll(() => api.getEndpoint(name), 3000, [api, name]);
  const [drafts, setDrafts] = useState<Record<string, Draft> | null>(null);
  const [baseVersion, setBaseVersion] = useState<number | null>(null);
  /** The operator changed a weight or status since the drafts were last taken from a table. */
  const [edited, setEdited] = useState(false);
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [failure, setFailure] = useState<ApiError | null>(null);
  const [saved, setSaved] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  /** The public switch while its change is on the way (then the table read back decides). */
  const [publicPending, setPublicPending] = useState<boolean | null>(null);

  // Edits start from the table as read; while unsaved edits exist, polling does not overwrite them.
  const table: Endpoint | null = ep.data;
  const resetFrom = (t: Endpoint) => {
    setBaseVersion(t.version);
    setDrafts(Object.fromEntries(t.routes.map((r) => [r.id, { weight: String(r.weight), status: r.status }])));
    setEdited(false);
  };
  useEffect(() => {
    if (table && !edited) resetFrom(table);
  }, [table, edited]);
  const edit = (id: string, change: Partial<Draft>) => {
    setDrafts({ ...drafts, [id]: { ...drafts![id], ...change } });
    setEdited(true);
  };

  if (!table || !drafts) {
    return (
      <section>
        <p class="crumbs">
          <a href={href({ page: 'endpoints' })}>‹ Back to the list</a>
        </p>
        {ep.error ? <ErrorBanner error={ep.error} prefix={`Endpoint ${name}`} /> : <p>Loading…</p>}
      </section>
    );
  }

  const dirty = table.routes.some((r) => drafts[r.id] && (drafts[r.id].weight !== String(r.weight) || drafts[r.id].status !== r.status));
  const stale = edited && baseVersion !== null && table.version !== baseVersion;

  const setPublic = async (value: boolean) => {
    setFailure(null);
    setSaved(null);
    setBusy(true);
    setPublicPending(value);
    try {
      await api.patchEndpoint(name, { public: value });
      setSaved(value ? 'The endpoint is open to public.' : 'The endpoint now requires a token.');
    } catch (err) {
      setFailure(asApiError(err));
    } finally {
      await ep.reload();
      setPublicPending(null);
      setBusy(false);
    }
  };

  const saveRoutes = async (e: Event) => {
    e.preventDefault();
    setFailure(null);
    setSaved(null);
    setErrors({});
    const routes = table.routes.map((r) => ({ id: r.id, url: r.url, weight: Number(drafts[r.id]?.weight ?? r.weight), status: (drafts[r.id]?.status ?? r.status) as (typeof ROUTE_STATUSES)[number] }));
    const local: Record<string, string> = {};
    table.routes.forEach((r, i) => {
      const w = drafts[r.id]?.weight ?? '';
      // JSON has no NaN: only "not a number" is caught here; the range is the server's to judge.
      if (w.trim() === '' || !Number.isFinite(Number(w))) local[`routes.${i}.weight`] = 'enter a number';
    });
    if (Object.keys(local).length > 0) {
      setErrors(local);
      return;
    }
    setBusy(true);
    try {
      const next = await api.putEndpoint(name, { public: table.public, routes, timeouts: table.timeouts, limits: table.limits, allowed_cidrs: table.allowed_cidrs, balancer: table.balancer, expected_version: baseVersion ?? table.version });
      setSaved(`Saved as version ${next.version}.`);
      resetFrom(next);
      await ep.reload();
    } catch (err) {
      const apiErr = asApiError(err);
      if (apiErr.status === 409) {
        setFailure(new ApiError(409, apiErr.code, `someone else changed this endpoint meanwhile (${apiErr.message}). Discard your changes and edit the current table.`));
      } else {
        // Details about a route go next to its weight; the banner says only that it was refused.
        setErrors(apiErr.fieldMessages());
        setFailure(apiErr.details.length > 0 ? new ApiError(apiErr.status, apiErr.code, apiErr.message) : apiErr);
      }
    } finally {
      setBusy(false);
    }
  };

  return (
    <section aria-labelledby="endpoint-title">
      <p class="crumbs">
        <a href={href({ page: 'endpoints' })}>‹ Back to the list</a>
      </p>
      <div class="page-head">
        <div>
          <h1 id="endpoint-title">{name}</h1>
          <p class="lede">
            <code class="url">{table.url}</code> · version {table.version}
          </p>
        </div>
      </div>
      <ErrorBanner error={ep.error} prefix="Could not refresh" />
      <ErrorBanner error={failure} prefix="Not saved" />
      {saved && (
        <div class="banner ok" role="status">
          {saved}
        </div>
      )}
      <div class="card">
        <label class="switch">
          <input type="checkbox" checked={publicPending ?? table.public} disabled={busy} onChange={(e) => void setPublic(e.currentTarget.checked)} />
          Public (callers need no token)
        </label>
      </div>
      <form class="card" onSubmit={saveRoutes} aria-labelledby="routes-title" noValidate>
        <div class="card-head">
          <h2 id="routes-title">Routes</h2>
          <div class="controls">
            {dirty && (
              <button type="button" onClick={() => resetFrom(table)} disabled={busy}>
                Discard changes
              </button>
            )}
            <button type="submit" class="primary" disabled={busy || !dirty}>
              Save routes
            </button>
          </div>
        </div>
        {stale && dirty && <p class="banner warn">The table changed since you started editing (version {table.version}); saving will be refused. Discard and edit again.</p>}
        <table aria-label="Routes">
          <thead>
            <tr>
              <th scope="col">Route ID</th>
              <th scope="col">Status</th>
              <th scope="col">Address</th>
              <th scope="col">Weight</th>
            </tr>
          </thead>
          <tbody>
            {table.routes.map((r, i) => (
              <tr key={r.id}>
                <td>
                  <code>{r.id}</code>
                </td>
                <td>
                  <StatusBadge status={r.status} />{' '}
                  <select
                    aria-label={`Status of route ${r.id}`}
                    value={drafts[r.id]?.status ?? r.status}
                    onChange={(e) => edit(r.id, { status: e.currentTarget.value })}
                  >
                    {ROUTE_STATUSES.map((s) => (
                      <option key={s} value={s}>
                        {s}
                      </option>
                    ))}
                  </select>
                </td>
                <td>
                  <code>{r.url}</code>
                </td>
                <td>
                  <input
                    class="weight"
                    type="number"
                    min={0}
                    step="any"
                    aria-label={`Weight of route ${r.id}`}
                    aria-invalid={Boolean(errors[`routes.${i}.weight`])}
                    value={drafts[r.id]?.weight ?? String(r.weight)}
                    onInput={(e) => edit(r.id, { weight: e.currentTarget.value })}
                  />
                  {errors[`routes.${i}.weight`] && (
                    <p class="field-error" role="alert">
                      {errors[`routes.${i}.weight`]}
                    </p>
                  )}
                </td>
              </tr>
            ))}
            {table.routes.length === 0 && (
              <tr>
                <td colSpan={4} class="empty">
                  No route: requests are held, then answered 503.
                </td>
              </tr>
            )}
          </tbody>
        </table>
      </form>
      <EndpointCharts api={api} endpoint={name} />
      <TokensPanel api={api} endpoint={name} isPublic={table.public} />
    </section>
  );
}
