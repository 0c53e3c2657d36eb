import { useEffect, useRef, useState } from 'preact/hooks';
import type { AdminApi, ApiError, ValidateBody, ValidateResult } from './api.js';
import { asApiError } from './hooks.js';
import { ErrorBanner, Modal } from './ui.js';

/**
 * Validate: runs one replica of the folder to healthy or failed (POST /v1/services/validate)
 * and shows its log as it streams, then the result. As in the seed guide, "Finished" only
 * says the run ended; the healthy flag and the log say how.
 */
export function ValidateDialog(props: { api: AdminApi; body: ValidateBody; onClose: () => void }) {
  const [lines, setLines] = useState<string[]>([]);
  const [result, setResult] = useState<ValidateResult | null>(null);
  const [failure, setFailure] = useState<ApiError | null>(null);
  const logRef = useRef<HTMLPreElement>(null);

  useEffect(() => {
    const abort = new AbortController();
    props.api
      .validate(
        props.body,
        (event) => {
          if (event.type === 'log') setLines((prev) => (prev.length >= 2000 ? [...prev.slice(-1999), event.line] : [...prev, event.line]));
          else setResult(event);
        },
        abort.signal,
      )
      .catch((err) => {
        if (!abort.signal.aborted) setFailure(asApiError(err));
      });
    // Closing the dialog cancels the stream; the gateway then stops the replica at once.
    return () => abort.abort();
  }, []);

  useEffect(() => {
    const log = logRef.current;
    if (log) log.scrollTop = log.scrollHeight;
  }, [lines]);

  const running = result === null && failure === null;
  return (
    <Modal
      title="Validation"
      onClose={props.onClose}
      wide
      footer={
        <button type="button" onClick={props.onClose} class={running ? '' : 'primary'}>
          {running ? 'Stop' : 'Close'}
        </button>
      }
    >
      <p class="validate-status" role="status" aria-live="polite">
        Result:{' '}
        {running ? (
          <strong class="badge info">Running</strong>
        ) : result ? (
          <>
            <strong class="badge muted">{result.status}</strong>{' '}
            <strong class={`badge ${result.healthy ? 'ok' : 'bad'}`}>{result.healthy ? 'Healthy' : 'Failed'}</strong>
          </>
        ) : (
          <strong class="badge bad">Error</strong>
        )}
      </p>
      {result?.error && (
        <div class="banner error" role="alert">
          {result.error}
          {result.details && result.details.length > 0 && (
            <ul>
              {result.details.map((d) => (
                <li key={d.field + d.message}>
                  <code>{d.field}</code>: {d.message}
                </li>
              ))}
            </ul>
          )}
        </div>
      )}
      <ErrorBanner error={failure} prefix="Validation could not run" />
      <h3 class="sub">Container log</h3>
      <pre ref={logRef} class="log" role="log" aria-label="Container log" aria-live="polite" tabIndex={0}>
        {lines.length === 0 ? (running ? 'Waiting for output…' : '(no output)') : lines.join('\n')}
      </pre>
    </Modal>
  );
}
