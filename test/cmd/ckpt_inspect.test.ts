// ckpt-inspect on our files, on hand-built headers of every dtype, and on truncated and hostile files;
// its report's pieces in lib (the table, the summary) on known rows.
import { beforeAll, describe, expect, test } from "bun:test";
import { closeSync, openSync, writeFileSync, ftruncateSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { initGpu } from "../../lib/gpu/index.ts";
import { parseRows, resolveTarget } from "../../lib/io/inspect.ts";
import { writeSafetensors } from "../../lib/io/safetensors.ts";
import { fmtStat, formatTable, inspectSummary, type Row, rowRecord, summaryText } from "../../lib/model/inspect.ts";
import { bun, events, root, seqData, sh, tmp } from "../train/helpers.ts";

const dir = tmp("inspect");

function inspect(args: string[]) {
  return sh(["cmd/ckpt-inspect.ts", ...args]);
}

/** a safetensors file from raw parts: header object (or text) and data bytes */
function rawFile(name: string, header: unknown, data: Uint8Array, lenOverride?: bigint): string {
  const h = Buffer.from(typeof header === "string" ? header : JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(lenOverride ?? BigInt(h.length));
  const p = join(dir, name);
  writeFileSync(p, Buffer.concat([len, h, data]));
  return p;
}

beforeAll(async () => {
  await initGpu();
});

describe("every dtype", () => {
  // the same four values [1.5, -2, 0, 3] (or their nearest) in every dtype, plus BOOL
  const enc: Record<string, (v: number[]) => Buffer> = {
    F64: (v) => Buffer.from(Float64Array.from(v).buffer),
    F32: (v) => Buffer.from(Float32Array.from(v).buffer),
    F16: () => Buffer.from(Uint16Array.from([0x3e00, 0xc000, 0x0000, 0x4200]).buffer),
    BF16: () => Buffer.from(Uint16Array.from([0x3fc0, 0xc000, 0x0000, 0x4040]).buffer),
    I64: () => Buffer.from(BigInt64Array.from([1n, -2n, 0n, 3n]).buffer),
    U64: () => Buffer.from(BigUint64Array.from([1n, 2n, 0n, 3n]).buffer),
    I32: () => Buffer.from(Int32Array.from([1, -2, 0, 3]).buffer),
    U32: () => Buffer.from(Uint32Array.from([1, 2, 0, 3]).buffer),
    I16: () => Buffer.from(Int16Array.from([1, -2, 0, 3]).buffer),
    U16: () => Buffer.from(Uint16Array.from([1, 2, 0, 3]).buffer),
    I8: () => Buffer.from(Int8Array.from([1, -2, 0, 3]).buffer),
    U8: () => Buffer.from([1, 2, 0, 3]),
    BOOL: () => Buffer.from([1, 0, 0, 1]),
    F8_E4M3: () => Buffer.from([0x3c, 0xc0, 0x00, 0x44]),
    F8_E5M2: () => Buffer.from([0x3e, 0xc0, 0x00, 0x42]),
  };
  const want: Record<string, number[]> = {
    F64: [1.5, -2, 0, 3],
    F32: [1.5, -2, 0, 3],
    F16: [1.5, -2, 0, 3],
    BF16: [1.5, -2, 0, 3],
    I64: [1, -2, 0, 3],
    U64: [1, 2, 0, 3],
    I32: [1, -2, 0, 3],
    U32: [1, 2, 0, 3],
    I16: [1, -2, 0, 3],
    U16: [1, 2, 0, 3],
    I8: [1, -2, 0, 3],
    U8: [1, 2, 0, 3],
    BOOL: [1, 0, 0, 1],
    F8_E4M3: [1.5, -2, 0, 3],
    F8_E5M2: [1.5, -2, 0, 3],
  };
  let file = "";
  beforeAll(() => {
    const header: Record<string, unknown> = {};
    const parts: Buffer[] = [];
    let off = 0;
    for (const [dt, f] of Object.entries(enc)) {
      const b = f(want[dt]!);
      header[`t_${dt}`] = { dtype: dt, shape: [2, 2], data_offsets: [off, off + b.length] };
      parts.push(b);
      off += b.length;
    }
    file = rawFile("dtypes.safetensors", header, Buffer.concat(parts));
  });

  test("headers, values and statistics", () => {
    const r = inspect([file, "--stats", "--json"]);
    expect(r.code).toBe(0);
    const rows = events(r.out);
    for (const [dt, v] of Object.entries(want)) {
      const row = rows.find((x) => x.name === `t_${dt}`);
      expect(row).toMatchObject({ dtype: dt, shape: [2, 2], numel: 4, nan: 0, inf: 0 });
      const mean = v.reduce((a, b) => a + b, 0) / 4;
      expect(row.mean).toBeCloseTo(mean, 10);
      expect(row.min).toBe(Math.min(...v));
      expect(row.max).toBe(Math.max(...v));
      expect(row.l2).toBeCloseTo(Math.sqrt(v.reduce((a, b) => a + b * b, 0)), 10);
      const t = inspect([file, "--tensor", `t_${dt}`]);
      expect(JSON.parse(t.out).values).toEqual([
        [v[0], v[1]],
        [v[2], v[3]],
      ]);
    }
    expect(rows[rows.length - 1]).toMatchObject({ event: "summary", kind: "safetensors", tensors: 15 });
  });

  test("NaN and Inf are counted, not averaged", () => {
    const f = rawFile(
      "nan.safetensors",
      { x: { dtype: "F32", shape: [4], data_offsets: [0, 16] } },
      Buffer.from(Float32Array.from([1, NaN, Infinity, 3]).buffer),
    );
    const row = events(inspect([f, "--stats", "--json"]).out)[0];
    expect(row).toMatchObject({ nan: 1, inf: 1, mean: 2, min: 1, max: 3 });
    expect(events(inspect([f, "--stats", "--json"]).out).pop().non_finite).toEqual(["x"]);
  });
});

describe("our files", () => {
  let d: ReturnType<typeof seqData>;
  beforeAll(() => {
    d = seqData(dir);
    const r = sh([
      "cmd/pretrain.ts",
      "--data",
      d.data,
      "--out",
      join(dir, "run"),
      "--model",
      d.model,
      "--max-steps",
      "4",
      "--batch-size",
      "2",
      "--ckpt-interval",
      "2",
    ]);
    if (r.code !== 0) throw new Error(r.err);
  });

  test("a checkpoint: tensors, parameters by module, config and meta", () => {
    const r = inspect([join(dir, "run", "step_000004")]);
    expect(r.code).toBe(0);
    const ev = events(r.out);
    const s = ev.pop();
    expect(ev.map((e) => e.name)).toContain("model.layers.1.mlp.down_proj.weight");
    expect(s).toMatchObject({
      kind: "checkpoint",
      tensors: 20,
      meta: { step: 4, strategy: "seq" },
      config: { hidden_size: 32, model_type: "llama" },
    });
    const m = s.params_by_module;
    expect(m.embedding).toBe(400 * 32);
    expect(m.embedding + m.attention + m.mlp + m.norms).toBe(s.total_params);
    expect(s.meta.last_metrics.step).toBe(4);
  });

  test("a shard directory: every shard's tensors and the manifest", () => {
    const ev = events(inspect([d.data]).out);
    const s = ev.pop();
    expect(s.kind).toBe("shards");
    expect(s.manifest.type).toBe("seq");
    expect(new Set(ev.map((e) => e.name))).toEqual(new Set(["input_ids", "target_ids"]));
    const row = events(inspect([d.data, "--tensor", "input_ids", "--rows", "0:1"]).out)[0];
    expect(row.values[0]).toHaveLength(16);
  });

  test("--diff between two checkpoints of the same run", () => {
    const ev = events(inspect([join(dir, "run", "step_000002"), "--diff", join(dir, "run", "step_000004")]).out);
    const s = ev.pop();
    expect(s).toMatchObject({ event: "summary", compared: 20, only_in_first: 0, only_in_second: 0 });
    expect(s.max_abs_diff).toBeGreaterThan(0);
    expect(ev.every((e) => e.max_abs_diff >= 0 && e.max_rel_diff >= 0)).toBe(true);
    const self = events(
      inspect([join(dir, "run", "step_000004"), "--diff", join(dir, "run", "step_000004")]).out,
    ).pop();
    expect(self.max_abs_diff).toBe(0);
    // names in only one file
    const f = join(dir, "one.safetensors");
    writeSafetensors(f, {
      "model.norm.weight": { dtype: "F32", shape: [32], data: new Float32Array(32) },
      extra: { dtype: "F32", shape: [1], data: new Float32Array(1) },
    });
    const mixed = events(inspect([f, "--diff", join(dir, "run", "step_000004")]).out);
    expect(mixed.find((e) => e.name === "extra")).toMatchObject({ only_in: f });
    expect(mixed.pop()).toMatchObject({ compared: 1, only_in_first: 1, only_in_second: 19 });
  });
});

describe("bad files: one line, exit 1", () => {
  const bad: [string, () => string, RegExp][] = [
    [
      "not a safetensors file",
      () => {
        const p = join(dir, "junk.bin");
        writeFileSync(p, "hello, I am text, not tensors at all");
        return p;
      },
      /not a safetensors file \(its first 8 bytes do not give a header length under 100 MiB\)|runs past the end/,
    ],
    [
      "shorter than the header length",
      () => {
        const p = join(dir, "tiny.bin");
        writeFileSync(p, "abc");
        return p;
      },
      /shorter than the 8-byte header length/,
    ],
    [
      "a header that is not JSON",
      () => rawFile("nojson.safetensors", "{not json", Buffer.alloc(0)),
      /the header is not valid JSON/,
    ],
    [
      "a truncated file",
      () =>
        rawFile("trunc.safetensors", { x: { dtype: "F32", shape: [100], data_offsets: [0, 400] } }, Buffer.alloc(100)),
      /data ends at byte \d+, past the end of the \d+-byte file \(truncated\?\)/,
    ],
    [
      "offsets past the end",
      () =>
        rawFile("past.safetensors", { x: { dtype: "F32", shape: [1], data_offsets: [1000, 1004] } }, Buffer.alloc(4)),
      /past the end/,
    ],
    [
      "overlapping ranges",
      () =>
        rawFile(
          "overlap.safetensors",
          {
            a: { dtype: "F32", shape: [2], data_offsets: [0, 8] },
            b: { dtype: "F32", shape: [2], data_offsets: [4, 12] },
          },
          Buffer.alloc(12),
        ),
      /overlaps the tensor before it/,
    ],
    [
      "a shape that lies about the size",
      () => rawFile("lies.safetensors", { a: { dtype: "F32", shape: [3], data_offsets: [0, 8] } }, Buffer.alloc(8)),
      /F32\[3\] needs 12 bytes but its offsets span 8/,
    ],
    [
      "a huge header length",
      () => rawFile("huge.safetensors", {}, Buffer.alloc(0), 1n << 60n),
      /not a safetensors file \(its first 8 bytes do not give a header length under 100 MiB\)/,
    ],
    [
      "an unknown dtype",
      () => rawFile("dtype.safetensors", { a: { dtype: "Q4", shape: [1], data_offsets: [0, 1] } }, Buffer.alloc(1)),
      /unknown dtype "Q4"/,
    ],
    [
      "a directory with no checkpoint",
      () => dir + "/../",
      /no checkpoint \(model\.safetensors\), shard manifest .* here/,
    ],
    ["a missing path", () => join(dir, "nothing-here"), /no such file or directory/],
  ];
  for (const [name, make, re] of bad)
    test(name, () => {
      const r = inspect([make()]);
      expect(r.code).toBe(1);
      const lines = r.err
        .trim()
        .split("\n")
        .filter((l) => l.startsWith("bunlm:"));
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(re);
      expect(r.err).not.toMatch(/\bat .*\.ts:\d+/); // no stack trace
    });
});

test("a 1 GB file: header only, RSS well under 1 GB, done in seconds", async () => {
  const p = join(dir, "big.safetensors");
  const n = 256 * 1024 * 1024; // 1 GiB of F32
  const h = Buffer.from(JSON.stringify({ w: { dtype: "F32", shape: [16384, n / 16384], data_offsets: [0, n * 4] } }));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(h.length));
  writeFileSync(p, Buffer.concat([len, h]));
  const fd = openSync(p, "r+");
  ftruncateSync(fd, 8 + h.length + n * 4); // sparse: no disk used
  closeSync(fd);
  const t0 = performance.now();
  const proc = Bun.spawn([bun, "cmd/ckpt-inspect.ts", p, "--json"], { cwd: root, stdout: "pipe", stderr: "pipe" });
  let peak = 0;
  while (proc.exitCode === null) {
    try {
      const m = readFileSync(`/proc/${proc.pid}/status`, "utf8").match(/VmRSS:\s+(\d+)/);
      if (m) peak = Math.max(peak, Number(m[1]) * 1024);
    } catch {}
    await Bun.sleep(10);
  }
  const seconds = (performance.now() - t0) / 1000;
  expect(proc.exitCode).toBe(0);
  const s = events(await new Response(proc.stdout).text()).pop();
  expect(s).toMatchObject({ tensors: 1, total_params: n, bytes: n * 4 });
  console.error(`1 GiB file: peak RSS ${(peak / 2 ** 20).toFixed(0)} MiB, ${seconds.toFixed(2)} s`);
  expect(peak).toBeLessThan(200 * 2 ** 20);
  expect(seconds).toBeLessThan(10);
});

describe("the report in lib (lib/model/inspect.ts)", () => {
  const rows: Row[] = [
    {
      name: "model.embed_tokens.weight",
      dtype: "F32",
      shape: [4, 2],
      numel: 8,
      bytes: 32,
      stats: { mean: 0.125, std: 1.5, min: -2, max: 3, l2: 4.25, nan: 0, inf: 0 },
    },
    {
      name: "model.norm.weight",
      dtype: "BF16",
      shape: [2],
      numel: 2,
      bytes: 4,
      stats: { mean: null, std: null, min: null, max: null, l2: 0, nan: 2, inf: 0 },
    },
  ];

  test("formatTable aligns names and dtypes left, numbers right; statistics to 4 decimals", () => {
    expect(formatTable(rows, false)).toBe(
      [
        "name                       dtype  shape  numel",
        "model.embed_tokens.weight  F32    [4,2]      8",
        "model.norm.weight          BF16     [2]      2",
      ].join("\n"),
    );
    expect(formatTable(rows, true)).toBe(
      [
        "name                       dtype  shape  numel    mean     std  min  max      l2  nan  inf",
        "model.embed_tokens.weight  F32    [4,2]      8  0.1250  1.5000   -2    3  4.2500    0    0",
        "model.norm.weight          BF16     [2]      2       -       -    -    -       0    2    0",
      ].join("\n"),
    );
  });

  test("with colour: a bold header and a red non-zero NaN/Inf count, nothing else", () => {
    const t = formatTable(rows, true, true);
    // biome-ignore lint/suspicious/noControlCharactersInRegex: the ESC that starts a colour code
    expect(t.replace(/\x1b\[\d+m/g, "")).toBe(formatTable(rows, true));
    const lines = t.split("\n");
    expect(lines[0]).toStartWith("\x1b[1mname");
    expect(lines[1]).not.toContain("\x1b[");
    expect(lines[2]).toEndWith("\x1b[31m  2\x1b[0m    0");
  });

  test("fmtStat: integers whole, small and large numbers in exponent form", () => {
    expect([3, 0.5, 1e-5, 123456.7, -0.000999, null].map(fmtStat)).toEqual([
      "3",
      "0.5000",
      "1.000e-5",
      "1.235e+5",
      "-9.990e-4",
      "-",
    ]);
  });

  test("rowRecord flattens the statistics; summaryText is the closing line", () => {
    expect(rowRecord(rows[0]!)).toEqual({
      name: "model.embed_tokens.weight",
      dtype: "F32",
      shape: [4, 2],
      numel: 8,
      bytes: 32,
      mean: 0.125,
      std: 1.5,
      min: -2,
      max: 3,
      l2: 4.25,
      nan: 0,
      inf: 0,
    });
    const f = join(dir, "two.safetensors");
    writeSafetensors(f, {
      "model.embed_tokens.weight": { dtype: "F32", shape: [4, 2], data: new Float32Array(8) },
      "model.norm.weight": { dtype: "F32", shape: [2], data: new Float32Array(2) },
    });
    const s = inspectSummary(resolveTarget(f), rows);
    expect(s).toMatchObject({ tensors: 2, total_params: 10, bytes: 36, non_finite: ["model.norm.weight"] });
    expect(summaryText(s)).toBe(`safetensors ${f}: 2 tensors, 10 values, 36 bytes — embedding 8, norms 2`);
  });

  test("parseRows: a:b with either side empty, clamped to the rows there are", () => {
    expect(parseRows(undefined, 5)).toEqual([0, 5]);
    expect(parseRows("1:3", 5)).toEqual([1, 3]);
    expect(parseRows(":2", 5)).toEqual([0, 2]);
    expect(parseRows("3:", 5)).toEqual([3, 5]);
    expect(parseRows("2:99", 5)).toEqual([2, 5]);
    expect(() => parseRows("3:1", 5)).toThrow("--rows 3:1: start is after end");
    expect(() => parseRows("1-2", 5)).toThrow("--rows 1-2: expected a:b (either side may be empty)");
  });
});

test("on a terminal: the table and the closing line; --rows without --tensor is refused", () => {
  const f = join(dir, "tty.safetensors");
  writeSafetensors(f, { w: { dtype: "F32", shape: [2], data: Float32Array.from([1, Number.NaN]) } });
  const p = Bun.spawnSync(["script", "-qec", `'${bun}' cmd/ckpt-inspect.ts '${f}' --stats`, "/dev/null"], {
    cwd: root,
    env: { ...process.env, NO_COLOR: "1" },
  });
  expect(p.stdout.toString().replace(/\r\n/g, "\n")).toBe(
    [
      // NaN is counted, not averaged: mean 1, std 0, L2 1 over the one finite value
      "name  dtype  shape  numel  mean  std  min  max  l2  nan  inf",
      "w     F32      [2]      2     1    0    1    1   1    1    0",
      `safetensors ${f}: 1 tensor, 2 values, 8 bytes — other 2`,
      "",
    ].join("\n"),
  );
  const r = inspect([f, "--rows", "0:1"]);
  expect(r.code).toBe(1);
  expect(r.err).toBe("bunlm: error: --rows needs --tensor NAME\n");
});
