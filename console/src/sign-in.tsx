import { useState } from 'preact/hooks';
import { AdminApi, type ApiError } from './api.js';
import { asApiError } from './hooks.js';
import { ErrorBanner, Field } from './ui.js';

/**
 * Sign in with the admin token. It is checked against the admin API, then kept in this tab's
 * sessionStorage only and sent as an Authorization header: no cookie, so no CSRF.
 */
export function SignIn(props: { onSignedIn: (token: string) => void; reason: string | null }) {
  const [token, setToken] = useState('');
  const [error, setError] = useState<string | undefined>(undefined);
  const [failure, setFailure] = useState<ApiError | null>(null);
  const [busy, setBusy] = useState(false);

  const submit = async (e: Event) => {
    e.preventDefault();
    const value = token.trim();
    if (value === '') {
      setError('Enter the admin token');
      return;
    }
    setBusy(true);
    setError(undefined);
    setFailure(null);
    try {
      await new AdminApi(value).listEndpoints();
      props.onSignedIn(value);
    } catch (err) {
      const apiErr = asApiError(err);
      if (apiErr.status === 401) setError('This admin token is not accepted.');
      else setFailure(apiErr);
    } finally {
      setBusy(false);
    }
  };

  return (
    <main class="signin">
      <form class="card" onSubmit={submit} noValidate aria-labelledby="signin-title">
        <div class="brand big">
          <span class="logo" aria-hidden="true" />
          modelgate
        </div>
        <h1 id="signin-title">Sign in to the console</h1>
        <p class="lede">Use the gateway's admin token (ADMIN_TOKEN, or the one printed at first start). It stays in this tab only.</p>
        {props.reason && (
          <div class="banner warn" role="status">
            {props.reason}
          </div>
        )}
        <ErrorBanner error={failure} />
        <Field label="Admin token" error={error}>
          {(ids) => (
            <input
              id={ids.id}
              type="password"
              autoComplete="off"
              spellcheck={false}
              value={token}
              onInput={(e) => setToken(e.currentTarget.value)}
              aria-describedby={ids.describedBy}
              aria-invalid={ids.invalid}
              autoFocus
            />
          )}
        </Field>
        <button type="submit" class="primary wide" disabled={busy}>
          Sign in
        </button>
      </form>
    </main>
  );
}
