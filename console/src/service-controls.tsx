import { useState } from 'preact/hooks';
import type { AdminApi, ApiError, Service } from './api.js';
import { asApiError } from './hooks.js';
import { ServiceForm } from './service-form.js';
import { ConfirmDialog } from './ui.js';

/** Modify, Terminate (after a confirmation) and Clear error and Retry, for one service. */
export function ServiceControls(props: { api: AdminApi; service: Service; onChanged: () => void; onTerminated?: () => void; onError: (err: ApiError | null) => void }) {
  const { api, service } = props;
  const [modifying, setModifying] = useState(false);
  const [confirming, setConfirming] = useState(false);
  const [busy, setBusy] = useState(false);
  const [terminateError, setTerminateError] = useState<ApiError | null>(null);

  const clear = async () => {
    setBusy(true);
    props.onError(null);
    try {
      await api.clearErrors(service.name);
      props.onChanged();
    } catch (err) {
      props.onError(asApiError(err));
    } finally {
      setBusy(false);
    }
  };

  const terminate = async () => {
    setBusy(true);
    setTerminateError(null);
    try {
      await api.terminateService(service.name);
      setConfirming(false);
      props.onChanged();
      props.onTerminated?.();
    } catch (err) {
      setTerminateError(asApiError(err));
    } finally {
      setBusy(false);
    }
  };

  const terminating = service.status === 'TERMINATING';
  return (
    <div class="controls">
      <button type="button" onClick={() => setModifying(true)} disabled={terminating}>
        Modify
      </button>
      <button type="button" onClick={clear} disabled={busy || terminating} title="Clear failed routes, re-read the model definition and retry">
        Clear error and Retry
      </button>
      <button type="button" class="danger" onClick={() => setConfirming(true)} disabled={terminating}>
        Terminate
      </button>
      {modifying && (
        <ServiceForm
          api={api}
          service={service}
          onClose={() => setModifying(false)}
          onSaved={() => {
            setModifying(false);
            props.onChanged();
          }}
        />
      )}
      {confirming && (
        <ConfirmDialog
          title="Terminate service"
          message={
            <>
              Terminate <strong>{service.name}</strong>? Its replicas are drained and stopped, and its endpoint and tokens are removed.
            </>
          }
          busy={busy}
          error={terminateError}
          onConfirm={terminate}
          onCancel={() => {
            setConfirming(false);
            setTerminateError(null);
          }}
        />
      )}
    </div>
  );
}
