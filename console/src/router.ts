import { useEffect, useState } from 'preact/hooks';

/**
 * Hash routes (`#/services/NAME`): the console is three static files, so the admin listener
 * needs no route per screen, and nothing secret is ever in the URL.
 */
export type Route =
  | { page: 'services' }
  | { page: 'service'; name: string }
  | { page: 'endpoints' }
  | { page: 'endpoint'; name: string };

export function parseRoute(hash: string): Route {
  const parts = hash.replace(/^#\/?/, '').split('/').map(decodeURIComponent);
  if (parts[0] === 'services' && parts[1]) return { page: 'service', name: parts[1] };
  if (parts[0] === 'endpoints' && parts[1]) return { page: 'endpoint', name: parts[1] };
  if (parts[0] === 'endpoints') return { page: 'endpoints' };
  return { page: 'services' };
}

export function href(route: Route): string {
  switch (route.page) {
    case 'services':
      return '#/services';
    case 'service':
      return `#/services/${encodeURIComponent(route.name)}`;
    case 'endpoints':
      return '#/endpoints';
    case 'endpoint':
      return `#/endpoints/${encodeURIComponent(route.name)}`;
  }
}

export function navigate(route: Route): void {
  location.hash = href(route);
}

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(location.hash));
  useEffect(() => {
    const onChange = () => setRoute(parseRoute(location.hash));
    addEventListener('hashchange', onChange);
    return () => removeEventListener('hashchange', onChange);
  }, []);
  return route;
}
