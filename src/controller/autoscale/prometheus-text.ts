/**
 * One metric out of a Prometheus text exposition (a replica's /metrics): the sum of every
 * sample of that name, whatever its labels (vLLM's `vllm:num_requests_waiting` has one per
 * model). Null when the metric is absent. Lines are scanned by hand: the text comes from a
 * model process and is never trusted to be well-formed.
 */
export function readPrometheusMetric(text: string, name: string): number | null {
  let sum = 0;
  let found = false;
  let start = 0;
  while (start < text.length) {
    let end = text.indexOf('\n', start);
    if (end < 0) end = text.length;
    const line = text.slice(start, end).trim();
    start = end + 1;
    if (line === '' || line[0] === '#' || !line.startsWith(name)) continue;
    let rest = line.slice(name.length);
    const next = rest[0];
    if (next === '{') {
      const close = rest.indexOf('}');
      if (close < 0) continue;
      rest = rest.slice(close + 1);
    } else if (next !== ' ' && next !== '\t') {
      continue; // a longer name with the same prefix
    }
    const value = Number(rest.trim().split(/\s+/)[0]);
    if (!Number.isFinite(value)) continue;
    sum += value;
    found = true;
  }
  return found ? sum : null;
}
