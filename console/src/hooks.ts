import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { ApiError } from './api.js';

export interface Polled<T> {
  data: T | null;
  /** The last failure; `data` keeps the last good answer so a screen never shows half an update. */
  error: ApiError | null;
  reload: () => Promise<void>;
}

/** Calls `load` now and every `intervalMs`; one call at a time; stops when unmounted. */
export function usePoll<T>(load: () => Promise<T>, intervalMs: number, deps: unknown[] = []): Polled<T> {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const busy = useRef(false);
  const alive = useRef(true);
  const loadRef = useRef(load);
  loadRef.current = load;

  const reload = useCallback(async () => {
    if (busy.current) return;
    busy.current = true;
    try {
      const value = await loadRef.current();
      if (!alive.current) return;
      setData(value);
      setError(null);
    } catch (err) {
      if (alive.current) setError(asApiError(err));
    } finally {
      busy.current = false;
    }
  }, []);

  useEffect(() => {
    alive.current = true;
    setData(null);
    setError(null);
    void reload();
    const timer = setInterval(() => void reload(), intervalMs);
    return () => {
      alive.current = false;
      clearInterval(timer);
    };
  }, deps);

  return { data, error, reload };
}

export function asApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err;
  return new ApiError(0, 'CONSOLE', (err as Error)?.message ?? String(err));
}
