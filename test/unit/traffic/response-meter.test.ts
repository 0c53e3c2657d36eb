import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MeterMode, ResponseMeter, meterModeFor } from '../../../src/traffic/response-meter.js';
import { UsageScanner } from '../../../src/traffic/usage-scanner.js';
import { splitAt } from './support/split.js';


function feed(meter: ResponseMeter, chunks: Buffer[]): string {
  let out = '';
  for (const c of chunks) {
    const r = meter.onData(c);
    if (r !== null) out += r.toString('utf8');
  }
  const rest = meter.end();
  if (rest !== null) out += rest.toString('utf8');
  return out;
}

const content = (i: number, eol: string) => `data: {"choices":[{"delta":{"content":"t${i} \\"usage\\":{}"}}],"usage":null}${eol}${eol}`;
const usageOnly = (p: number, c: number, eol: string) => `data: {"choices":[],"usage":{"prompt_tokens":${p},"completion_tokens":${c}}}${eol}${eol}`;

describe('ResponseMeter', () => {
  it('reads usage from a JSON body split anywhere, ignoring "usage" inside strings and nested objects', () => {
    const body = Buffer.from(
      '{"id":"x","choices":[{"message":{"content":"\\"usage\\": {\\"prompt_tokens\\": 9}","usage":{"prompt_tokens":77}}}],\n "usage" : {"prompt_tokens": 12, "completion_tokens": 30, "details": {"x": [1, {"y": "}"}]}}}',
    );
    fc.assert(
      fc.property(fc.array(fc.nat(), { maxLength: 8 }), (cuts) => {
        const meter = new ResponseMeter(MeterMode.Json, false);
        expect(feed(meter, splitAt(body, cuts))).toBe(body.toString());
        expect(meter.usage).toEqual({ prompt: 12, completion: 30 });
      }),
    );
  });

  it('passes an SSE stream through unchanged and keeps the last usage, whatever the chunking and line endings', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 5 }), fc.constantFrom('\n', '\r\n', '\r'), fc.array(fc.nat(), { maxLength: 12 }), (n, eol, cuts) => {
        let text = ': comment' + eol + eol;
        for (let i = 0; i < n; i++) text += content(i, eol);
        text += usageOnly(5, n, eol) + 'data: [DONE]' + eol + eol;
        const meter = new ResponseMeter(MeterMode.Sse, false);
        expect(feed(meter, splitAt(Buffer.from(text), cuts))).toBe(text);
        expect(meter.usage).toEqual({ prompt: 5, completion: n });
      }),
    );
  });

  it('in filter mode drops only the usage-only event, never delaying a finished event', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 5 }), fc.constantFrom('\n', '\r\n'), fc.array(fc.nat(), { maxLength: 12 }), (n, eol, cuts) => {
        let kept = '';
        for (let i = 0; i < n; i++) kept += content(i, eol);
        const text = kept + usageOnly(3, 4, eol) + 'data: [DONE]' + eol + eol;
        const meter = new ResponseMeter(MeterMode.Sse, true);
        expect(feed(meter, splitAt(Buffer.from(text), cuts))).toBe(kept + 'data: [DONE]' + eol + eol);
        expect(meter.usage).toEqual({ prompt: 3, completion: 4 });
      }),
    );
    // An event is released as soon as its blank line arrives.
    const meter = new ResponseMeter(MeterMode.Sse, true);
    expect(meter.onData(Buffer.from('data: {"choices":[{"delta":{}}]}\n'))).toBeNull();
    expect(meter.onData(Buffer.from('\ndata: {"cho'))?.toString()).toBe('data: {"choices":[{"delta":{}}]}\n\n');
  });

  it('keeps usage in a content chunk (choices not empty) and joins multi-line data', () => {
    const text = 'data: {"choices":[{"delta":{}}],\ndata: "usage":{"prompt_tokens":1,"completion_tokens":2}}\n\n';
    const meter = new ResponseMeter(MeterMode.Sse, true);
    expect(feed(meter, [Buffer.from(text)])).toBe(text);
    expect(meter.usage).toEqual({ prompt: 1, completion: 2 });
  });

  it('never breaks on malformed, absent or oversized usage', () => {
    for (const body of [
      '{"usage": {"prompt_tokens": "many", "completion_tokens": }}',
      '{"usage": null}',
      '{"choices": []}',
      '[1,2,3]',
      'not json at all {{{{',
      `{"usage": {"prompt_tokens": 1, "pad": "${'x'.repeat(10_000)}"}}`,
      '{"usage": {"prompt_tokens": -4, "completion_tokens": 1.5}}',
    ]) {
      for (const length of [-1, Buffer.byteLength(body)]) {
        const meter = new ResponseMeter(MeterMode.Json, false, length);
        expect(feed(meter, [Buffer.from(body)])).toBe(body);
        expect(meter.usage).toBeNull();
      }
    }
  });

  it('picks the mode from Content-Type', () => {
    expect(meterModeFor('text/event-stream; charset=utf-8')).toBe(MeterMode.Sse);
    expect(meterModeFor('application/json')).toBe(MeterMode.Json);
    expect(meterModeFor('text/plain')).toBe(MeterMode.None);
    expect(meterModeFor(undefined)).toBe(MeterMode.None);
  });

  it('reads input_tokens/output_tokens spellings too', () => {
    const s = new UsageScanner();
    s.feed(Buffer.from('{"usage":{"input_tokens":3,"output_tokens":4}}'));
    expect(s.usage()).toEqual({ prompt: 3, completion: 4 });
  });
});

describe('readUsage', () => {
  const read = async (text: string) => (await import('../../../src/traffic/usage-scanner.js')).readUsage(Buffer.from(text));
  it('reads the object’s own counts only', async () => {
    expect(await read('{"prompt_tokens": 12, "completion_tokens":30,"total_tokens":42}')).toEqual({ prompt: 12, completion: 30 });
    expect(await read('{"prompt_tokens_details":{"prompt_tokens":99},"completion_tokens":3}')).toEqual({ prompt: 0, completion: 3 });
    expect(await read('{"x":"\\"prompt_tokens\\": 5","prompt_tokens":1}')).toEqual({ prompt: 1, completion: 0 });
    expect(await read('{"prompt_tokens":1.5,"completion_tokens":1e3}')).toBeNull();
    expect(await read('{"prompt_tokens":9999999999999}')).toBeNull();
  });
});
