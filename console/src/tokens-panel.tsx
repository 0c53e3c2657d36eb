import { useRef, useState } from 'preact/hooks';
import type { AdminApi, ApiError, IssuedToken } from './api.js';
import { formatTime } from './format.js';
import { asApiError, usePoll } from './hooks.js';
import { ErrorBanner, Field, Modal } from './ui.js';

const pad = (n: number) => String(n).padStart(2, '0');
/** `<input type=date>` and `<input type=time>` values of a moment, in local time (the inputs have no time zone). */
const dateValue = (d: Date) => `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
const timeValue = (d: Date) => `${pad(d.getHours())}:${pad(d.getMinutes())}`;

/**
 * The endpoint's tokens: list (metadata only; the API never returns a token string twice),
 * Generate token with an expiration date, the new token shown once with Copy, and Revoke.
 */
export function TokensPanel(props: { api: AdminApi; endpoint: string; isPublic: boolean }) {
  const { api, endpoint } = props;
  const tokens = usePoll(() => api.listTokens(endpoint), 5000, [api, endpoint]);
  const [generating, setGenerating] = useState(false);
  const [revokeError, setRevokeError] = useState<ApiError | null>(null);

  const revoke = async (jti: string) => {
    setRevokeError(null);
    try {
      await api.revokeToken(endpoint, jti);
    } catch (err) {
      setRevokeError(asApiError(err));
    }
    await tokens.reload();
  };

  return (
    <section class="card" aria-labelledby="tokens-title">
      <div class="card-head">
        <h2 id="tokens-title">Tokens</h2>
        <button type="button" class="primary" onClick={() => setGenerating(true)}>
          Generate token
        </button>
      </div>
      {props.isPublic && <p class="hint">This endpoint is open to public: callers need no token. Tokens still work, and keep working if it is made private.</p>}
      <ErrorBanner error={tokens.error} prefix="Could not load the tokens" />
      <ErrorBanner error={revokeError} prefix="Not revoked" />
      <table aria-label="Tokens">
        <thead>
          <tr>
            <th scope="col">Token ID</th>
            <th scope="col">Subject</th>
            <th scope="col">Created</th>
            <th scope="col">Expires</th>
            <th scope="col">State</th>
            <th scope="col">
              <span class="sr-only">Actions</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {tokens.data?.map((t) => (
            <tr key={t.jti}>
              <td>
                <code>{t.jti}</code>
              </td>
              <td>{t.sub}</td>
              <td>{formatTime(t.created_at)}</td>
              <td>{formatTime(t.expires_at)}</td>
              <td>{t.revoked ? <span class="badge bad">revoked</span> : <span class="badge ok">valid</span>}</td>
              <td class="actions">
                {!t.revoked && (
                  <button type="button" class="danger small" onClick={() => void revoke(t.jti)}>
                    Revoke
                  </button>
                )}
              </td>
            </tr>
          ))}
          {tokens.data?.length === 0 && (
            <tr>
              <td colSpan={6} class="empty">
                No token yet.
              </td>
            </tr>
          )}
        </tbody>
      </table>
      {generating && (
        <GenerateTokenDialog
          api={api}
          endpoint={endpoint}
          onIssued={() => void tokens.reload()}
          onClose={() => setGenerating(false)}
        />
      )}
    </section>
  );
}

function GenerateTokenDialog(props: { api: AdminApi; endpoint: string; onIssued: () => void; onClose: () => void }) {
  // Default: this time tomorrow.
  const [expiresDate, setExpiresDate] = useState(() => dateValue(new Date(Date.now() + 24 * 3600 * 1000)));
  const [expiresTime, setExpiresTime] = useState(() => timeValue(new Date()));
  const [sub, setSub] = useState('');
  const [errors, setErrors] = useState<{ expires?: string; sub?: string }>({});
  const [failure, setFailure] = useState<ApiError | null>(null);
  const [issued, setIssued] = useState<IssuedToken | null>(null);
  const [copied, setCopied] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const tokenRef = useRef<HTMLInputElement>(null);

  const generate = async (e: Event) => {
    e.preventDefault();
    // A date alone means the end of that day's chosen time (00:00 when the time is cleared).
    const at = new Date(`${expiresDate}T${expiresTime || '00:00'}`);
    if (expiresDate === '' || Number.isNaN(at.getTime())) {
      setErrors({ expires: 'choose a date' });
      return;
    }
    if (at.getTime() <= Date.now()) {
      setErrors({ expires: 'must be in the future' });
      return;
    }
    setBusy(true);
    setErrors({});
    setFailure(null);
    try {
      const token = await props.api.issueToken(props.endpoint, { expires_at: at.toISOString(), ...(sub.trim() ? { sub: sub.trim() } : {}) });
      setIssued(token);
      props.onIssued();
    } catch (err) {
      const apiErr = asApiError(err);
      const fields = apiErr.fieldMessages();
      const placed = { expires: fields.expires_at ?? fields.ttl_seconds, sub: fields.sub };
      setErrors(placed);
      if (!placed.expires && !placed.sub) setFailure(apiErr);
    } finally {
      setBusy(false);
    }
  };

  const copy = async () => {
    if (!issued) return;
    try {
      await navigator.clipboard.writeText(issued.token);
      setCopied('Copied to the clipboard.');
    } catch {
      // No clipboard permission: select it so Ctrl+C copies it.
      tokenRef.current?.select();
      setCopied('Selected: press Ctrl+C to copy.');
    }
  };

  return (
    <Modal
      title={issued ? 'Token generated' : 'Generate token'}
      onClose={props.onClose}
      footer={
        issued ? (
          <button type="button" class="primary" onClick={props.onClose}>
            Done
          </button>
        ) : (
          <>
            <button type="button" onClick={props.onClose}>
              Cancel
            </button>
            <button type="submit" form="token-form" class="primary" disabled={busy}>
              Generate
            </button>
          </>
        )
      }
    >
      {issued ? (
        <div class="issued">
          <p>
            This is the only time the token is shown. Copy it now and send it as <code>Authorization: Bearer &lt;token&gt;</code>.
          </p>
          <Field label="Token">
            {(ids) => (
              <div class="copy-row">
                <input id={ids.id} ref={tokenRef} readOnly value={issued.token} class="mono" onFocus={(e) => e.currentTarget.select()} />
                <button type="button" class="primary" onClick={() => void copy()}>
                  Copy
                </button>
              </div>
            )}
          </Field>
          <p class="hint" role="status">
            {copied ?? `Expires ${formatTime(issued.expires_at)}. ID ${issued.jti}.`}
          </p>
        </div>
      ) : (
        <form id="token-form" class="form" onSubmit={generate} noValidate>
          <ErrorBanner error={failure} prefix="No token generated" />
          <div class="row">
            <Field label="Expiration date" error={errors.expires}>
              {(ids) => (
                <input
                  id={ids.id}
                  type="date"
                  value={expiresDate}
                  onInput={(e) => setExpiresDate(e.currentTarget.value)}
                  aria-describedby={ids.describedBy}
                  aria-invalid={ids.invalid}
                />
              )}
            </Field>
            <Field label="Expiration time">
              {(ids) => <input id={ids.id} type="time" value={expiresTime} onInput={(e) => setExpiresTime(e.currentTarget.value)} />}
            </Field>
          </div>
          <Field label="Subject (optional)" error={errors.sub} hint="Who the token is for; it appears in the access log.">
            {(ids) => <input id={ids.id} value={sub} onInput={(e) => setSub(e.currentTarget.value)} aria-describedby={ids.describedBy} aria-invalid={ids.invalid} />}
          </Field>
        </form>
      )}
    </Modal>
  );
}
