const CLASSES = ['1xx', '1xx', '2xx', '3xx', '4xx', '5xx'] as const;

/** `'2xx'` for 204; precomputed strings so the hot path does no concatenation. */
export function statusClass(status: number): string {
  const i = (status / 100) | 0;
  return CLASSES[i] ?? '5xx';
}
