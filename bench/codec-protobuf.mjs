// Encode/decode cost of @svckit/codec-protobuf against raw protobufjs on the same schema, same run.
//
//   pnpm build && node packages/codec-protobuf/bench/codec.bench.mjs
//
// "raw" is what a protobufjs user would write: `Type.encode(obj).finish()` with numbers / Long
// objects for 64-bit fields, and `Type.decode(bytes)` (a message instance holding Longs, defaults
// on its prototype). "raw+toObject" adds `toObject(..., { longs: BigInt, defaults: true, ... })`,
// which gives what svckit's decode gives. Raw and svckit alternate within each round so machine
// noise hits both alike; the ratio is the median of the per-round ratios (1.00 = no overhead).
import { fileURLToPath } from "node:url";
import { loadProtoSync } from "@svckit/codec-protobuf";
import protobuf from "protobufjs";

const addsvc = fileURLToPath(
  new URL("../packages/codec-protobuf/src/testdata/addsvc.proto", import.meta.url),
);
const rich = fileURLToPath(new URL("../packages/codec-protobuf/src/testdata/rich.proto", import.meta.url));
const root = loadProtoSync([addsvc, rich]);
const raw = protobuf.loadSync([addsvc, rich]);
const Long = protobuf.util.Long;

const rounds = Number(process.env.ROUNDS ?? 21);
const iterations = Number(process.env.ITERATIONS ?? 100_000);
let sink = 0;

function time(fn) {
  const start = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) sink ^= fn() === undefined ? 0 : 1;
  return Number(process.hrtime.bigint() - start) / iterations;
}

const median = (values) => [...values].sort((a, b) => a - b)[values.length >> 1];

/** ns/op of each function and the median per-round ratio of each to the first. */
function compare(fns) {
  for (const fn of fns) time(fn); // warm-up
  const samples = fns.map(() => []);
  for (let r = 0; r < rounds; r++) {
    for (const [i, fn] of fns.entries()) samples[i].push(time(fn));
  }
  return samples.map((s, i) => ({
    ns: median(s),
    ratio: median(s.map((v, r) => v / samples[0][r])),
    index: i,
  }));
}

const cases = [
  {
    name: "pb.SumRequest, small int64s",
    type: "pb.SumRequest",
    value: { a: 1n, b: 2n },
    rawValue: { a: 1, b: 2 },
  },
  {
    name: "pb.SumRequest, int64s > 2^53",
    type: "pb.SumRequest",
    value: { a: 2n ** 60n, b: -(2n ** 62n) },
    rawValue: { a: Long.fromString("1152921504606846976"), b: Long.fromString("-4611686018427387904") },
  },
  {
    name: "pb.ConcatRequest, two strings",
    type: "pb.ConcatRequest",
    value: { a: "hello", b: "world" },
    rawValue: { a: "hello", b: "world" },
  },
  {
    name: "rich.v1.Item, 3 nested tags",
    type: "rich.v1.Item",
    value: {
      name: "widget",
      quantity: 42n,
      status: 1,
      tags: ["a", "b", "c"].map((key, i) => ({ key, weight: BigInt(i) })),
    },
    rawValue: {
      name: "widget",
      quantity: 42,
      status: 1,
      tags: ["a", "b", "c"].map((key, i) => ({ key, weight: i })),
    },
  },
];

const toObjectOptions = { longs: BigInt, defaults: true, arrays: true, objects: true, oneofs: true };
console.log(`node ${process.version}; ${rounds} rounds x ${iterations} ops; median ns/op (ratio to raw)\n`);
console.log("| message | raw encode | svckit encode | raw decode | raw decode+toObject | svckit decode |");
console.log("| --- | --- | --- | --- | --- | --- |");
for (const c of cases) {
  const type = root.messageType(c.type);
  const rawType = raw.lookupType(c.type);
  const bytes = Buffer.from(type.encode(c.value));
  if (!Buffer.from(rawType.encode(c.rawValue).finish()).equals(bytes))
    throw new Error(`${c.name}: bytes differ`);
  const [rawEncode, ourEncode] = compare([
    () => rawType.encode(c.rawValue).finish(),
    () => type.encode(c.value),
  ]);
  const [rawDecode, rawObject, ourDecode] = compare([
    () => rawType.decode(bytes),
    () => rawType.toObject(rawType.decode(bytes), toObjectOptions),
    () => type.decode(bytes),
  ]);
  const cell = (m) => `${m.ns.toFixed(0)} (${m.ratio.toFixed(2)}×)`;
  console.log(
    `| ${c.name} | ${rawEncode.ns.toFixed(0)} | ${cell(ourEncode)} | ${rawDecode.ns.toFixed(0)} | ${cell(rawObject)} | ${cell(ourDecode)} |`,
  );
}
if (sink === 2) console.log("");
