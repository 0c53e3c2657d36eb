import type { ComponentChildren } from 'preact';
import { useEffect, useId, useRef } from 'preact/hooks';
import type { ApiError } from './api.js';

/** Shared pieces: modal dialog, labelled field with its error, status badge, error banner. */

export function Modal(props: { title: string; onClose: () => void; children: ComponentChildren; wide?: boolean; footer?: ComponentChildren }) {
  const ref = useRef<HTMLDialogElement>(null);
  const titleId = useId();
  useEffect(() => {
    const dialog = ref.current!;
    if (!dialog.open) dialog.showModal();
    const onCancel = (e: Event) => {
      e.preventDefault();
      props.onClose();
    };
    dialog.addEventListener('cancel', onCancel);
    return () => dialog.removeEventListener('cancel', onCancel);
  }, [props.onClose]);
  return (
    <dialog ref={ref} class={props.wide ? 'modal wide' : 'modal'} aria-labelledby={titleId}>
      <header class="modal-head">
        <h2 id={titleId}>{props.title}</h2>
      </header>
      <div class="modal-body">{props.children}</div>
      {props.footer && <footer class="modal-foot">{props.footer}</footer>}
    </dialog>
  );
}

/** A labelled control; `error` is shown under it and announced with it (aria-describedby). */
export function Field(props: {
  label: string;
  error?: string;
  hint?: string;
  children: (ids: { id: string; describedBy: string | undefined; invalid: boolean }) => ComponentChildren;
  inline?: boolean;
}) {
  const id = useId();
  const errorId = `${id}-error`;
  const hintId = `${id}-hint`;
  const describedBy = [props.error ? errorId : '', props.hint ? hintId : ''].filter(Boolean).join(' ') || undefined;
  return (
    <div class={`field${props.inline ? ' inline' : ''}${props.error ? ' has-error' : ''}`}>
      <label for={id}>{props.label}</label>
      {props.children({ id, describedBy, invalid: Boolean(props.error) })}
      {props.hint && (
        <p id={hintId} class="hint">
          {props.hint}
        </p>
      )}
      {props.error && (
        <p id={errorId} class="field-error" role="alert">
          {props.error}
        </p>
      )}
    </div>
  );
}

const STATUS_CLASS: Record<string, string> = {
  HEALTHY: 'ok',
  healthy: 'ok',
  DEGRADED: 'warn',
  PROVISIONING: 'info',
  provisioning: 'info',
  IDLE: 'muted',
  TERMINATING: 'muted',
  terminating: 'muted',
  UNHEALTHY: 'bad',
  unhealthy: 'bad',
  failed_to_start: 'bad',
};

export function StatusBadge(props: { status: string }) {
  return <span class={`badge ${STATUS_CLASS[props.status] ?? 'muted'}`}>{props.status}</span>;
}

export function ErrorBanner(props: { error: ApiError | null; prefix?: string }) {
  if (!props.error) return null;
  return (
    <div class="banner error" role="alert">
      {props.prefix ? `${props.prefix}: ` : ''}
      {props.error.message}
      {props.error.details.length > 0 && (
        <ul>
          {props.error.details.map((d) => (
            <li key={d.field + d.message}>
              <code>{d.field}</code>: {d.message}
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}

/** Asks before something that cannot be undone; the confirm button is "OK", as in the seed guide. */
export function ConfirmDialog(props: { title: string; message: ComponentChildren; busy?: boolean; error?: ApiError | null; onConfirm: () => void; onCancel: () => void }) {
  return (
    <Modal
      title={props.title}
      onClose={props.onCancel}
      footer={
        <>
          <button type="button" onClick={props.onCancel}>
            Cancel
          </button>
          <button type="button" class="danger" disabled={props.busy} onClick={props.onConfirm}>
            OK
          </button>
        </>
      }
    >
      <p>{props.message}</p>
      <ErrorBanner error={props.error ?? null} />
    </Modal>
  );
}
