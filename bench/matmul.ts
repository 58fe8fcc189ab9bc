// bun bench/matmul.ts [--sizes 256,512,1024,2048,2048x512x2048] [--providers dawn,bun] [--reps N] [--no-torch]
//                     [--precision f32|mixed]
// One JSON line per provider and size: our kernel's GFLOPS (`gflops`) beside PyTorch f32's
// (`torch_gflops`: the GPU with TF32 off when CUDA is there, else the CPU with 2 threads on OpenBLAS),
// measured in the same run. Each provider runs in its own process (one adapter per process).
// --precision mixed times what `--precision mixed` training's matmuls run: f16 operands, f32
// accumulation, on subgroup matrices where BUNLM_SUBGROUP_MATRIX and the adapter give a path
// (native: tensor cores; emulate: workgroup memory), else the tiled kernel with f16-rounded inputs;
// `kernel` and `subgroup_matrix` say which. Its torch figure stays PyTorch f32 (bench/gpu.sh adds
// TF32 and bf16).
import { defineCommand } from "citty";
import { join } from "node:path";
import { runCli } from "../cmd/_cli.ts";
import { InputError } from "../lib/base/errors.ts";
import { torchPython } from "./python.ts";

const here = import.meta.dir;

function parseSizes(s: string): [number, number, number][] {
  return s.split(",").map((x) => {
    const p = x.split("x").map(Number);
    if (p.length === 1) return [p[0]!, p[0]!, p[0]!];
    if (p.length === 3 && p.every((v) => v > 0)) return p as [number, number, number]; // M x K x N
    throw new Error(`--sizes: "${x}" is neither N nor MxKxN`);
  });
}

function torchReference(sizes: [number, number, number][]): { device: string; gflops: Record<string, number> } | null {
  const python = torchPython();
  if (python === null) return null;
  const p = Bun.spawnSync([python, join(here, "torch_matmul.py"), JSON.stringify(sizes)], {
    stderr: "inherit",
  });
  if (p.exitCode !== 0) return null;
  return JSON.parse(p.stdout.toString());
}

const main = defineCommand({
  meta: { name: "bench-matmul", description: "matmul GFLOPS against PyTorch f32 in the same run" },
  args: {
    sizes: {
      type: "string",
      default: "256,512,1024,2048,2048x512x2048",
      description: "N (square) or MxKxN, comma-separated",
    },
    providers: { type: "string", default: "dawn,bun", description: "WebGPU providers to measure" },
    reps: { type: "string", default: "3", description: "timed repetitions per size (after one warm-up)" },
    precision: {
      type: "string",
      default: "f32",
      description: "f32 | mixed (f16 operands, f32 accumulation: subgroup matrices where there is a path)",
    },
    torch: { type: "boolean", default: true, description: "measure PyTorch too (--no-torch skips it)" },
    child: { type: "boolean", default: false, description: "internal: measure in this process" },
  },
  async run({ args }) {
    const sizes = parseSizes(args.sizes);
    if (args.precision !== "f32" && args.precision !== "mixed")
      throw new InputError(`--precision ${args.precision}: expected f32 or mixed`);
    if (args.child) return measure(sizes, Number(args.reps), args.precision);
    const ref = args.torch ? torchReference(sizes) : null;
    for (const provider of args.providers.split(",")) {
      const p = Bun.spawnSync(
        [
          process.execPath,
          import.meta.path,
          "--child",
          "--sizes",
          args.sizes,
          "--reps",
          args.reps,
          "--precision",
          args.precision,
        ],
        {
          env: { ...process.env, BUNLM_WEBGPU: provider },
          stderr: "pipe",
        },
      );
      if (p.exitCode !== 0)
        throw new Error(
          `provider ${provider}: ${(p.stderr.toString().trim().split("\n").pop() ?? "").replace(/^bunlm: error: /, "")}`,
        );
      for (const line of p.stdout.toString().trim().split("\n")) {
        const r = JSON.parse(line);
        const t = ref?.gflops[`${r.M}x${r.K}x${r.N}`] ?? null;
        console.log(
          JSON.stringify({
            ...r,
            torch_gflops: t && +t.toFixed(2),
            ratio: t ? +(r.gflops / t).toFixed(3) : null,
            torch_device: ref?.device ?? null,
          }),
        );
      }
    }
  },
});

async function measure(sizes: [number, number, number][], reps: number, precision: "f32" | "mixed"): Promise<void> {
  const { initGpu, acquireBuffer, writeBuffer, flush, readBuffer } = await import("../lib/gpu/index.ts");
  const { matmulVariant, matmulRef } = await import("../lib/ops/index.ts");
  const {
    dispatchVariant,
    cachedMatmulChoice,
    plainShape,
    withMatmulPrecision,
    sgmatTarget,
    sgmatVariant,
    dispatchSgmat,
    subgroupMatrixPath,
  } = await import("../lib/ops/_matmul_variants.ts");
  const { autotuneMatmul } = await import("../lib/ops/matmul_autotune.ts");
  const g = await initGpu();
  if (!process.env.BUNLM_MATMUL && !cachedMatmulChoice()) await autotuneMatmul();
  const mixed = precision === "mixed";
  // the tiled kernel reads the precision when its pipeline is made, inside the dispatch
  const sgmat = mixed ? sgmatTarget() : null;
  const tiled = matmulVariant();
  const kernel = sgmat ? { kernel: "matmul_sgmat", target: sgmat, tiling: sgmatVariant(sgmat) } : tiled;
  const run = (c: GPUBuffer, a: GPUBuffer, b: GPUBuffer, s: ReturnType<typeof plainShape>) =>
    withMatmulPrecision(mixed ? "f16" : "f32", () =>
      sgmat ? dispatchSgmat(sgmat, sgmatVariant(sgmat), c, a, b, s) : dispatchVariant(tiled, c, a, b, s),
    );
  for (const [M, K, N] of sizes) {
    const a = acquireBuffer(M * K * 4),
      b = acquireBuffer(K * N * 4),
      c = acquireBuffer(M * N * 4);
    const A = Float32Array.from({ length: M * K }, () => Math.random() - 0.5);
    const B = Float32Array.from({ length: K * N }, () => Math.random() - 0.5);
    writeBuffer(a, A);
    writeBuffer(b, B);
    const s = plainShape(M, N, K);
    run(c, a, b, s);
    // correctness first: a few rows of C against the CPU reference (of the f16-rounded inputs when mixed)
    const rows = Math.min(M, 4);
    const Ar = A.subarray(0, rows * K);
    const want = mixed
      ? matmulRef(Ar.map(Math.f16round), B.map(Math.f16round), rows, N, K)
      : matmulRef(Ar, B, rows, N, K);
    const C = new Float32Array(await readBuffer(c, rows * N * 4));
    let err = 0,
      mag = 0;
    for (let i = 0; i < want.length; i++)
      (err = Math.max(err, Math.abs(C[i]! - want[i]!))), (mag = Math.max(mag, Math.abs(want[i]!)));
    // products of f16 values are exact in f32, so both precisions differ from the reference only in the
    // order of the f32 sums; tensor cores also truncate while aligning them (Fasi et al. 2021, "Numerical
    // behavior of NVIDIA tensor cores"), hence the wider bound for mixed
    const tol = mixed ? 1e-3 : 1e-4;
    if (!(err <= tol * mag))
      throw new Error(`matmul ${M}x${K}x${N} (${precision}) is wrong: max error ${err} (magnitude ${mag})`);
    const t0 = performance.now();
    for (let r = 0; r < reps; r++) run(c, a, b, s);
    await flush();
    const sec = (performance.now() - t0) / 1000 / reps;
    const size = M === K && K === N ? String(M) : `${M}x${K}x${N}`;
    console.log(
      JSON.stringify({
        size,
        M,
        K,
        N,
        provider: g.provider,
        adapter: g.info.description || g.info.device,
        precision,
        ...(mixed ? { subgroup_matrix: subgroupMatrixPath() } : {}),
        kernel,
        gflops: +((2 * M * K * N) / sec / 1e9).toFixed(2),
      }),
    );
  }
}

if (import.meta.main) await runCli(main);
