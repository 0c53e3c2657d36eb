import { useMemo, useState } from 'preact/hooks';
import { AdminApi, session } from './api.js';
import { EndpointPage } from './endpoint-page.js';
import { EndpointsPage } from './endpoints-page.js';
import { href, useRoute } from './router.js';
import { ServicePage } from './service-page.js';
import { ServicesPage } from './services-page.js';
import { SignIn } from './sign-in.js';

/** The shell: sign-in until there is a token, then the navigation and the current screen. */
export function App() {
  const [token, setToken] = useState<string | null>(() => session.load());
  const [reason, setReason] = useState<string | null>(null);
  const route = useRoute();

  const api = useMemo(
    () =>
      token
        ? new AdminApi(token, () => {
            session.clear();
            setReason('The admin token is no longer accepted. Sign in again.');
            setToken(null);
          })
        : null,
    [token],
  );

  if (!api) {
    return (
      <SignIn
        reason={reason}
        onSignedIn={(value) => {
          session.save(value);
          setReason(null);
          setToken(value);
        }}
      />
    );
  }

  const section = route.page === 'endpoints' || route.page === 'endpoint' ? 'endpoints' : 'services';
  return (
    <div class="shell">
      <header class="topbar">
        <a class="brand" href={href({ page: 'services' })}>
          <span class="logo" aria-hidden="true" />
          modelgate
        </a>
        <nav aria-label="Main">
          <a href={href({ page: 'services' })} aria-current={section === 'services' ? 'page' : undefined}>
            Model Serving
          </a>
          <a href={href({ page: 'endpoints' })} aria-current={section === 'endpoints' ? 'page' : undefined}>
            Endpoints
          </a>
        </nav>
        <button
          type="button"
          class="ghost"
          onClick={() => {
            session.clear();
            setReason(null);
            setToken(null);
          }}
        >
          Sign out
        </button>
      </header>
      <main class="content">
        {route.page === 'services' && <ServicesPage api={api} />}
        {route.page === 'service' && <ServicePage key={route.name} api={api} name={route.name} />}
        {route.page === 'endpoints' && <EndpointsPage api={api} />}
        {route.page === 'endpoint' && <EndpointPage key={route.name} api={api} name={route.name} />}
      </main>
    </div>
  );
}
