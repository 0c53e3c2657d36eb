import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MeterMode, ResponseMeter } from '../../../src/traffic/response-meter.js';
import { UsageScanner, usageAtEnd } from '../../../src/traffic/usage-scanner.js';
import { ReferenceResponseMeter } from './support/response-meter-reference.js';
import { ReferenceUsageScanner } from './support/usage-scanner-reference.js';
import { splitAt as pieces } from './support/split.js';


function scan(text: Buffer, cuts: number[]) {
  const fast = new UsageScanner();
  const ref = new ReferenceUsageScanner();
  for (const p of pieces(text, cuts)) {
    // Fed as a window of a bigger buffer too: the scanner must not read past `end`.
    const padded = Buffer.concat([Buffer.from('}"x'), p, Buffer.from('"}:,')]);
    fast.feed(padded, 3, 3 + p.length);
    ref.feed(p);
  }
  return {
    fast: { has: fast.hasUsage, usage: fast.usage(), empty: fast.choicesEmpty },
    ref: { has: ref.hasUsage, usage: ref.usage(), empty: ref.choicesEmpty },
  };
}

const count = fc.oneof(fc.nat({ max: 100_000 }), fc.constantFrom('"7"', '1.5', '-3', 'null', '12abc', '9999999999999'));
const usageObject = fc
  .record({
    p: count,
    c: count,
    extra: fc.jsonValue({ maxDepth: 2 }),
    order: fc.boolean(),
    spelling: fc.constantFrom(['prompt_tokens', 'completion_tokens'], ['input_tokens', 'output_tokens']),
    pad: fc.constantFrom('', ' ', '\n  '),
  })
  .map(({ p, c, extra, order, spelling, pad }) => {
    const a = `${pad}"${spelling[0]}"${pad}:${pad}${p}`;
    const b = `"${spelling[1]}":${c}${pad}`;
    return `{${order ? a : b},"details":${JSON.stringify(extra)},${order ? b : a}}`;
  });
/** Documents shaped like completions: usage at the top level, nested, in strings, choices empty or not. */
const document = fc
  .record({
    before: fc.dictionary(fc.constantFrom('id', 'model', 'usage_x', 'x'), fc.jsonValue({ maxDepth: 3 }), { maxKeys: 3 }),
    choices: fc.oneof(fc.constant('[]'), fc.constant(' [ ] '), fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify([v]))),
    usage: fc.oneof(usageObject, fc.constant('null'), fc.constant('"usage"')),
    nested: fc.option(usageObject),
    tricky: fc.constantFrom('', '"\\"usage\\": {\\"prompt_tokens\\": 9}"', '"usa\\"ge"', '"\\\\"'),
    usageFirst: fc.boolean(),
  })
  .map(({ before, choices, usage, nested, tricky, usageFirst }) => {
    const head = JSON.stringify(before).slice(1, -1);
    const parts = [head, `"choices":${choices}`, `"note":${tricky || '1'}`, nested === null ? '' : `"n":{"usage":${nested}}`].filter((s) => s !== '');
    const u = `"usage" : ${usage}`;
    return `{${(usageFirst ? [u, ...parts] : [...parts, u]).join(',')}}`;
  });

describe('UsageScanner (against the byte-by-byte reference)', () => {
  it('reads the same usage and choices from completion-shaped JSON split anywhere', () => {
    fc.assert(
      fc.property(document, fc.array(fc.nat(), { maxLength: 10 }), (doc, cuts) => {
        const r = scan(Buffer.from(doc), cuts);
        expect(r.fast).toEqual(r.ref);
      }),
      { numRuns: 2000 },
    );
  });

  it('agrees on malformed input (bytes dropped, doubled or changed)', () => {
    fc.assert(
      fc.property(
        document,
        fc.array(fc.record({ at: fc.nat(), op: fc.constantFrom('drop', 'dup', '{', '}', '"', '\\', ':', ',', '[', ']') }), { minLength: 1, maxLength: 6 }),
        fc.array(fc.nat(), { maxLength: 6 }),
        (doc, edits, cuts) => {
          let s = doc;
          for (const { at, op } of edits) {
            const k = at % (s.length + 1);
            s = op === 'drop' ? s.slice(0, k) + s.slice(k + 1) : op === 'dup' ? s.slice(0, k) + s.slice(k, k + 1) + s.slice(k) : s.slice(0, k) + op + s.slice(k);
          }
          const r = scan(Buffer.from(s), cuts);
          expect(r.fast).toEqual(r.ref);
        },
      ),
      { numRuns: 3000 },
    );
  });

  it('agrees on long strings and on usage objects near and over the 4 KiB bound', () => {
    for (const len of [10, 31, 32, 33, 200, 5000]) {
      for (const pad of [4000, 4096 - 40, 4096 - 39, 5000]) {
        const doc = `{"choices":[{"message":{"content":"${'y'.repeat(len)}\\n${'z'.repeat(len)}"}}],"usage":{"prompt_tokens":3,"pad":"${'x'.repeat(pad)}","completion_tokens":4}}`;
        for (const cuts of [[], [17], [len + 40, len + 60, len + 100], [doc.length - 30], [doc.length - 2000, doc.length - 1000]]) {
          const r = scan(Buffer.from(doc), cuts);
          expect(r.fast).toEqual(r.ref);
        }
      }
    }
  });

  it('reads a whole valid document from its end exactly as the forward scan does', () => {
    let fromEnd = 0;
    fc.assert(
      fc.property(document, fc.constantFrom('', ' ', '\n'), (doc, trail) => {
        const text = doc + trail;
        try {
          JSON.parse(text);
        } catch {
          return; // the equivalence is for valid JSON; malformed bodies are covered below
        }
        const buf = Buffer.from(text);
        const ref = new ReferenceUsageScanner();
        ref.feed(buf);
        const back = usageAtEnd(Buffer.concat([Buffer.from('{"usage":{"prompt_tokens":5}}'), buf, Buffer.from('}}')]), 29, 29 + buf.length);
        if (back !== undefined) {
          fromEnd++;
          expect(back).toEqual(ref.usage());
        }
        // The meter, told the body's length, agrees whichever way it read it.
        const meter = new ResponseMeter(MeterMode.Json, false, buf.length);
        expect(meter.onData(buf)).toBe(buf);
        expect(meter.end()).toBeNull();
        expect(meter.usage).toEqual(ref.usage());
      }),
      { numRuns: 3000 },
    );
    // Completions put usage last: most of them were read from the end.
    expect(fromEnd).toBeGreaterThan(300);
  });

  it('reads from the end only what is a top-level usage object within the bound', () => {
    const end = (s: string) => usageAtEnd(Buffer.from(s));
    expect(end('{"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2}}\n')).toEqual({ prompt: 1, completion: 2 });
    expect(end('{"usage" :\n{"prompt_tokens":1,"x":"}\\"{"}}')).toEqual({ prompt: 1, completion: 0 });
    expect(end('{"a":{"usage":{"prompt_tokens":1}}}')).toBeUndefined();
    expect(end('{"x\\"usage":{"prompt_tokens":1}}')).toBeUndefined();
    expect(end('{"usage":{"prompt_tokens":1},"id":"x"}')).toBeUndefined();
    expect(end('{"usage":null}')).toBeUndefined();
    expect(end('[{"usage":{"prompt_tokens":1}}]')).toBeUndefined();
    expect(end(`{"usage":{"prompt_tokens":1,"pad":"${'x'.repeat(5000)}"}}`)).toBeUndefined();
    expect(end('{"usage":{"prompt_tokens":"7"}}')).toBeNull();
    expect(end('}}')).toBeUndefined();
  });

  it('is reset between SSE events', () => {
    const s = new UsageScanner();
    s.feed(Buffer.from('{"choices":[],"usage":{"prompt_tokens":1}}'));
    expect(s.usage()).toEqual({ prompt: 1, completion: 0 });
    expect(s.choicesEmpty).toBe(true);
    s.reset();
    s.feed(Buffer.from('{"choices":[1],"usage":null}'));
    expect([s.hasUsage, s.usage(), s.choicesEmpty]).toEqual([false, null, false]);
  });
});

describe('ResponseMeter on SSE (against the meter before the hot-path work)', () => {
  const eol = fc.constantFrom('\n', '\r\n', '\r');
  const event = fc.oneof(
    fc.record({ i: fc.nat(99), note: fc.constantFrom('t', '\\"usage\\":{\\"prompt_tokens\\":3}', 'usage', 'x') }).map(({ i, note }) => [`data: {"id":"c${i}","choices":[{"delta":{"content":"${note}"}}]}`]),
    fc.record({ p: fc.nat(999), c: fc.nat(999), empty: fc.boolean() }).map(({ p, c, empty }) => [`data: {"choices":${empty ? '[]' : '[{"delta":{}}]'},"usage":{"prompt_tokens":${p},"completion_tokens":${c}}}`]),
    fc.constant(['data: {"choices":[{"delta":{}}],"usage":null}']),
    fc.record({ p: fc.nat(999) }).map(({ p }) => ['data: {"choices":[],', `data: "usage":{"prompt_tokens":${p}}}`]),
    fc.constant(['id: 7', 'data:{"usage":{"completion_tokens":4}}']),
    fc.constant([': keep-alive']),
    fc.constant(['data: [DONE]']),
    fc.constant(['event: x', 'data: {"us\\"age":{"prompt_tokens":1}}']),
  );
  it('forwards the same bytes and reads the same usage, whatever the chunking, line ends and filter mode', () => {
    fc.assert(
      fc.property(fc.array(event, { maxLength: 8 }), eol, fc.boolean(), fc.array(fc.nat(), { maxLength: 12 }), (events, nl, filter, cuts) => {
        const text = Buffer.from(events.map((lines) => lines.join(nl) + nl + nl).join(''));
        const run = (meter: { onData(c: Buffer): Buffer | null; end(): Buffer | null; usage: unknown; events: number }) => {
          let out = '';
          for (const c of pieces(text, cuts)) out += meter.onData(c)?.toString('latin1') ?? '';
          out += meter.end()?.toString('latin1') ?? '';
          return { out, usage: meter.usage, events: meter.events };
        };
        expect(run(new ResponseMeter(MeterMode.Sse, filter))).toEqual(run(new ReferenceResponseMeter(2, filter)));
      }),
      { numRuns: 3000 },
    );
  });
});
