// LoRA against PyTorch (test/reference/lora_ref.py, PEFT's LoraLayer arithmetic) on tiny-untied with
// adapters on all seven projections (so the fused MLP's unfused path is in it): the loss and every
// adapter gradient within 1e-4; the projection identity dL/dA = s·Bᵀ·dL/dW, dL/dB = s·dL/dW·Aᵀ against
// bunlm's own full gradient of W; no gradient buffer for a frozen weight; base weights bit-identical
// after AdamW steps; a fresh adapter (B = 0) gives the base's logits bit for bit; the base view; merging.
import { beforeAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { initGpu, writeBuffer } from "../../lib/gpu/index.ts";
import { Tensor, scopeAsync } from "../../lib/tensor/index.ts";
import { backward } from "../../lib/ops/backward.ts";
import { zeroGrad } from "../../lib/tensor/autograd.ts";
import { loadModel } from "../../lib/model/checkpoint.ts";
import { forward } from "../../lib/model/transformer.ts";
import { namedParams, disposeParams, type ModelParams } from "../../lib/model/params.ts";
import type { ModelConfig } from "../../lib/model/config.ts";
import { crossEntropy } from "../../lib/ops/cross_entropy.ts";
import { readHeader, readTensor } from "../../lib/io/safetensors.ts";
import {
  LORA_TARGETS,
  attachLora,
  baseView,
  detachLora,
  loadAdapter,
  mergedWeights,
  readAdapterConfig,
} from "../../lib/model/lora.ts";
import { AdamW } from "../../lib/optim/adamw.ts";
import { relError } from "../lib/close.ts";

const FIX = join(import.meta.dir, "..", "reference", "fixtures");
const BASE = join(FIX, "tiny-untied"),
  ADAPTER = join(FIX, "lora-tiny");
const batch = JSON.parse(readFileSync(join(BASE, "batch.json"), "utf8"));
const B = batch.input_ids.length,
  T = batch.input_ids[0].length;

beforeAll(async () => {
  await initGpu();
});

/** logits and loss of the fixture batch; backward when asked */
async function run(config: ModelConfig, params: ModelParams, grad = false) {
  return scopeAsync(async () => {
    const ids = Tensor.from(batch.input_ids.flat(), [B * T], "i32");
    const pos = Tensor.from(batch.position_ids.flat(), [B * T], "i32");
    const logits = forward(config, params, ids, pos, B, T);
    const loss = crossEntropy(logits, Tensor.from(batch.targets.flat(), [B * T], "i32"));
    const out = { logits: (await logits.toArray()) as Float32Array, loss: (await loss.toArray())[0]! };
    if (grad) backward(loss);
    return out;
  });
}

const host = async (t: Tensor) => (await t.toArray()) as Float32Array;

/** (m, k)·(k, n) on the host, with optional transposes of the stored operands */
function mm(a: Float32Array, b: Float32Array, m: number, k: number, n: number, ta = false, tb = false) {
  const out = new Float32Array(m * n);
  for (let i = 0; i < m; i++)
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let q = 0; q < k; q++) s += a[ta ? q * m + i : i * k + q]! * b[tb ? j * k + q : q * n + j]!;
      out[i * n + j] = s;
    }
  return out;
}

describe("LoRA", () => {
  test("loss and adapter gradients match PyTorch; the projection identity holds", async () => {
    const exp = readHeader(join(ADAPTER, "expected.safetensors"));
    const want = (n: string) => readTensor(exp, n).data as Float32Array;
    const { config, params } = loadModel(BASE);
    const info = readAdapterConfig(ADAPTER);
    expect(info.spec).toEqual({ rank: 4, alpha: 8, targets: [...LORA_TARGETS] });
    expect(info.base).toBe(BASE);
    const lora = loadAdapter(ADAPTER, params, info);
    expect(lora.named.size).toBe(2 * 7 * 2);
    const got = await run(config, params, true);
    expect(Math.abs(got.loss - want("loss")[0]!) / want("loss")[0]!).toBeLessThan(1e-5);
    // frozen weights get no gradient buffer at all: that is the memory LoRA saves
    for (const [n, p] of namedParams(params)) if (p.grad) throw new Error(`${n} has a gradient`);
    for (const [n, t] of lora.named) {
      const e = relError(await host(t.grad!), want(`grad.${n}`));
      if (!(e < 1e-4)) throw new Error(`${n}: relative error ${e}`);
    }
    // the full gradient of each adapted W (unfrozen), and the adapters' gradients as its projections
    const gradA = new Map<string, Float32Array>();
    for (const [n, t] of lora.named) gradA.set(n, await host(t.grad!));
    zeroGrad(lora.named.values());
    for (const w of lora.weights.values()) w.requiresGrad = true;
    await run(config, params, true);
    const s = 8 / 4,
      r = 4;
    for (const [name, w] of lora.weights) {
      const G = await host(w.grad!);
      expect(relError(G, want(`grad.${name}`))).toBeLessThan(1e-4);
      const [O, I] = w.shape as [number, number];
      const stem = `base_model.model.${name.replace(/\.weight$/, "")}`;
      const A = await host(lora.named.get(`${stem}.lora_A.weight`)!),
        Bm = await host(lora.named.get(`${stem}.lora_B.weight`)!);
      const dA = mm(Bm, G, r, O, I, true).map((x) => s * x); // s·Bᵀ·G (r, I)
      const dB = mm(G, A, O, I, r, false, true).map((x) => s * x); // s·G·Aᵀ (O, r)
      expect(relError(gradA.get(`${stem}.lora_A.weight`)!, dA)).toBeLessThan(1e-4);
      expect(relError(gradA.get(`${stem}.lora_B.weight`)!, dB)).toBeLessThan(1e-4);
    }
    detachLora(lora);
    disposeParams(params);
  });

  test("a fresh adapter starts at the base exactly; AdamW moves the adapters only; the base view; merging", async () => {
    const { config, params } = loadModel(BASE);
    const base = await run(config, params);
    const before = new Map<string, Float32Array>();
    for (const [n, p] of namedParams(params)) before.set(n, await host(p));
    const lora = attachLora(params, { rank: 4, alpha: 8, targets: ["q_proj", "v_proj", "up_proj", "down_proj"] }, 3);
    expect(lora.named.size).toBe(2 * 4 * 2);
    // B = 0: x·Wᵀ + 0 is x·Wᵀ, bit for bit
    expect((await run(config, params)).logits).toEqual(base.logits);
    const opt = new AdamW([...lora.named.keys()], [...lora.named.values()], {
      beta1: 0.9,
      beta2: 0.95,
      eps: 1e-8,
      weightDecay: 0.1,
      gradClip: 1,
    });
    const losses: number[] = [];
    for (let step = 0; step < 4; step++) {
      losses.push((await run(config, params, true)).loss);
      opt.computeNorm();
      opt.update(1e-2);
      zeroGrad(lora.named.values());
    }
    expect(losses.at(-1)!).toBeLessThan(losses[0]! - 0.01);
    for (const [n, p] of namedParams(params)) {
      expect(p.grad).toBeNull();
      expect(await host(p)).toEqual(before.get(n)!);
    }
    const adapted = await run(config, params);
    // the base view shares the buffers and carries no adapter: the base model's logits exactly
    expect((await run(config, baseView(params))).logits).toEqual(base.logits);
    // W + s·B·A in place of W gives the adapted model's logits (another order of sums: 1e-5)
    const merged = await mergedWeights(lora);
    expect(merged.size).toBe(8);
    detachLora(lora);
    const named = namedParams(params);
    for (const [n, m] of merged) writeBuffer(named.get(n)!.buffer, m);
    expect(relError((await run(config, params)).logits, adapted.logits)).toBeLessThan(1e-5);
    opt.dispose();
    disposeParams(params);
  });
});
