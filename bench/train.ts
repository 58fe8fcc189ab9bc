// bun bench/train.ts [--gpu-config] [--precision f32|mixed] [--steps N] [--no-torch] [--long-seq T]
// Training tokens/s (forward, backward, clipping, AdamW: a whole optimizer step) of bench/model.ts's
// config against PyTorch (same model, AdamW, same batch) in the same run. --gpu-config uses the ~100M
// model of the issue (12 layers, hidden 768, 12 heads, 4 kv heads, intermediate 2048, vocab 32000,
// tied, seq 1024, batch 8) and, on CUDA, adds PyTorch's TF32 and bf16-autocast figures.
// dispatches_per_step counts every compute dispatch of one optimizer step (forward, backward, clipping,
// AdamW; dispatches_by_kernel splits them); dispatches_per_layer those of one transformer block's
// forward and backward, measured on the block alone (a gradient of ones seeds its output, so no loss
// kernel is counted).
// recompute: peak_buffer_bytes (the most pooled GPU buffer bytes held at once during a step) and
// tokens_per_s with and without --recompute (per-layer activation checkpointing), at the config's
// sequence length and at --long-seq (default 4×), the same batch.
import { defineCommand } from "citty";
import { join } from "node:path";
import { initGpu, readBuffers, dispatchStats, flush, poolStats } from "../lib/gpu/index.ts";
import { resetPeak } from "../lib/gpu/pool.ts";
import { withRecompute } from "../lib/tensor/checkpoint.ts";
import { Tensor, scopeAsync, zeroGrad } from "../lib/tensor/index.ts";
import { backward } from "../lib/ops/backward.ts";
import { fill, withMatmulPrecision } from "../lib/ops/index.ts";
import { parseModelConfig } from "../lib/model/config.ts";
import { initParams, namedParams, countParams } from "../lib/model/params.ts";
import { block, forward, plainPositions } from "../lib/model/transformer.ts";
import { crossEntropy } from "../lib/ops/cross_entropy.ts";
import { AdamW, ADAMW_DEFAULTS } from "../lib/optim/adamw.ts";
import { Rng } from "../lib/base/rng.ts";
import { runCli } from "../cmd/_cli.ts";
import { torchPython } from "./python.ts";

const SMALL = { layers: 6, hidden: 384, heads: 6, kv: 2, inter: 1024, vocab: 8192, seq: 256, batch: 1 };
const GPU = { layers: 12, hidden: 768, heads: 12, kv: 4, inter: 2048, vocab: 32000, seq: 1024, batch: 8 };

const main = defineCommand({
  meta: { name: "bench-train", description: "training step throughput against PyTorch" },
  args: {
    "gpu-config": { type: "boolean", default: false, description: "the ~100M model of the GPU target" },
    steps: { type: "string", default: "3", description: "timed optimizer steps" },
    torch: { type: "boolean", default: true, description: "measure PyTorch too (--no-torch skips it)" },
    recompute: {
      type: "boolean",
      default: true,
      description: "also the peak buffer bytes and tokens/s with and without --recompute (--no-recompute skips them)",
    },
    precision: {
      type: "string",
      default: "f32",
      description: "f32 | mixed (f16 matmul operands, f32 accumulation, loss scale 65536)",
    },
    "long-seq": {
      type: "string",
      default: "0",
      description: "the longer sequence of the recompute figures (0: 4× the config's)",
    },
  },
  async run({ args }) {
    const s = args["gpu-config"] ? GPU : SMALL;
    const longSeq = Number(args["long-seq"]) || 4 * s.seq;
    const g = await initGpu();
    const raw = {
      vocab_size: s.vocab,
      hidden_size: s.hidden,
      num_hidden_layers: s.layers,
      num_attention_heads: s.heads,
      num_key_value_heads: s.kv,
      intermediate_size: s.inter,
      tie_word_embeddings: true,
      max_position_embeddings: Math.max(s.seq, longSeq),
      rms_norm_eps: 1e-5,
      rope_theta: 10000,
    };
    const c = parseModelConfig(raw);
    const params = initParams(c, 0);
    const named = namedParams(params);
    const opt = new AdamW([...named.keys()], [...named.values()], ADAMW_DEFAULTS);
    const rng = new Rng(1);
    const N = s.batch * s.seq;
    const NL = s.batch * longSeq;
    const ids = Int32Array.from({ length: NL }, () => rng.int(s.vocab)),
      tgt = Int32Array.from({ length: NL }, () => rng.int(s.vocab));
    if (args.precision !== "f32" && args.precision !== "mixed")
      throw new Error(`--precision ${args.precision}: expected f32 or mixed`);
    const lossScale = args.precision === "mixed" ? 65536 : 1;
    const step = (T = s.seq) =>
      withMatmulPrecision(args.precision === "mixed" ? "f16" : "f32", () =>
        scopeAsync(async () => {
          const n = s.batch * T;
          const loss = crossEntropy(
            forward(
              c,
              params,
              Tensor.from(ids.subarray(0, n), [n], "i32"),
              Tensor.from(plainPositions(s.batch, T), [n], "i32"),
              s.batch,
              T,
            ),
            Tensor.from(tgt.subarray(0, n), [n], "i32"),
          );
          backward(loss, undefined, lossScale);
          opt.computeNorm(lossScale);
          await readBuffers([
            { buffer: loss.buffer, bytes: 4 },
            { buffer: opt.norm.stats.buffer, bytes: 8 },
          ]); // as the trainer: one readback
          opt.update(3e-4);
          zeroGrad(named.values());
        }),
      );
    await step();
    const before = dispatchStats();
    await step();
    const after = dispatchStats();
    const perStep = after.dispatches - before.dispatches;
    const byKernel = Object.fromEntries(
      [...after.byKernel]
        .map(([k, n]) => [k, n - (before.byKernel.get(k) ?? 0)] as const)
        .filter(([, n]) => n > 0)
        .sort((x, y) => y[1] - x[1]),
    );
    const perLayer = await withMatmulPrecision(args.precision === "mixed" ? "f16" : "f32", () =>
      scopeAsync(async () => {
        const pos = Tensor.from(plainPositions(s.batch, s.seq), [N], "i32");
        const x = fill([N, s.hidden], 0.5).param();
        const seed = fill([N, s.hidden], 1);
        const d0 = dispatchStats().dispatches;
        const y = block(c, params.layers[0]!, x, pos, s.batch, s.seq);
        const d1 = dispatchStats().dispatches;
        backward(y, seed);
        const d2 = dispatchStats().dispatches;
        await flush();
        zeroGrad([x, ...named.values()]);
        return { forward: d1 - d0, backward: d2 - d1 };
      }),
    );
    const steps = Number(args.steps);
    const t0 = performance.now();
    for (let i = 0; i < steps; i++) await step();
    const ours = (N * steps) / ((performance.now() - t0) / 1000);
    // recompute off and on at both lengths: one warm-up step, then the peak of one step, then the timed steps
    const recompute: Record<string, unknown>[] = [];
    for (const T of args.recompute ? [s.seq, longSeq] : []) {
      const row: Record<string, any> = { seq: T, peak_buffer_bytes: {}, tokens_per_s: {} };
      for (const on of [false, true]) {
        const key = on ? "recompute" : "plain";
        await withRecompute(on, async () => {
          await step(T);
          const base = poolStats().liveBytes;
          resetPeak();
          await step(T);
          row.peak_buffer_bytes[key] = poolStats().peakBytes - base;
          const t1 = performance.now();
          for (let i = 0; i < steps; i++) await step(T);
          row.tokens_per_s[key] = +((s.batch * T * steps) / ((performance.now() - t1) / 1000)).toFixed(1);
        });
      }
      row.peak_ratio = +(row.peak_buffer_bytes.recompute / row.peak_buffer_bytes.plain).toFixed(3);
      row.speed_ratio = +(row.tokens_per_s.recompute / row.tokens_per_s.plain).toFixed(3);
      recompute.push(row);
    }
    // model FLOPs per token: 6 × parameters (forward + backward matmuls) + attention 12·L·T·C/2 (causal)
    const flopsPerToken = 6 * countParams(c) + 6 * s.layers * s.seq * s.hidden;
    const refs: Record<string, number | null> = {};
    let torchDevice: string | null = null;
    const python = args.torch ? torchPython() : null;
    if (python !== null) {
      for (const mode of args["gpu-config"] ? ["f32", "tf32", "bf16"] : ["f32"]) {
        const p = Bun.spawnSync(
          [
            python,
            join(import.meta.dir, "torch_train.py"),
            JSON.stringify(raw),
            String(s.batch),
            String(s.seq),
            String(steps),
            mode,
          ],
          { stderr: "inherit" },
        );
        if (p.exitCode !== 0) continue;
        const r = JSON.parse(p.stdout.toString());
        torchDevice = r.torch_device;
        if (mode !== "f32" && !r.torch_device.startsWith("cpu"))
          refs[`torch_${mode}_tokens_per_s`] = +r.torch_tokens_per_s.toFixed(1);
        if (mode === "f32") refs.torch_tokens_per_s = +r.torch_tokens_per_s.toFixed(1);
      }
    }
    console.log(
      JSON.stringify({
        config: args["gpu-config"] ? "gpu" : "small",
        ...s,
        params: countParams(c),
        provider: g.provider,
        adapter: g.info.description || g.info.device,
        precision: args.precision,
        tokens_per_s: +ours.toFixed(1),
        dispatches_per_step: perStep,
        dispatches_per_layer: perLayer.forward + perLayer.backward,
        dispatches_per_layer_forward: perLayer.forward,
        dispatches_by_kernel: byKernel,
        model_tflops: +((ours * flopsPerToken) / 1e12).toFixed(3),
        recompute,
        ...refs,
        ratio: refs.torch_tokens_per_s ? +(ours / refs.torch_tokens_per_s).toFixed(3) : null,
        torch_device: torchDevice,
      }),
    );
  },
});

if (import.meta.main) await runCli(main);
