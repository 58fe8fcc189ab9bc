import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { initGpu } from "../../lib/gpu/index.ts";
import { Tensor, scopeAsync, keep } from "../../lib/tensor/index.ts";
import { ADAMW_DEFAULTS } from "../../lib/optim/adamw.ts";
import { Muon, muonRef, newtonSchulz, newtonSchulzRef, NS_COEFFS, usesMuon } from "../../lib/optim/muon.ts";
import { readHeader, readTensor } from "../../lib/io/safetensors.ts";
import { randn, expectAllClose } from "../lib/close.ts";

// test/reference/muon_ref.py's settings and parameters (regenerate the fixture with
//   /usr/bin/python3 test/reference/muon_ref.py test/reference/fixtures/muon/expected.safetensors)
const FIXTURE = join(import.meta.dir, "..", "reference", "fixtures", "muon", "expected.safetensors");
const PARAMS: [string, number[]][] = [
  ["model.embed_tokens.weight", [16, 8]],
  ["model.layers.0.input_layernorm.weight", [8]],
  ["model.layers.0.self_attn.q_proj.weight", [8, 8]],
  ["model.layers.0.self_attn.q_proj.bias", [8]],
  ["model.layers.0.mlp.up_proj.weight", [24, 8]],
  ["model.layers.0.mlp.down_proj.weight", [8, 24]],
  ["lm_head.weight", [16, 8]],
];
const MAX_LR = 1e-3;
const LRS = [1e-3, 5e-4, 2e-4];
const MUON = { lr: 0.02, maxLr: MAX_LR, momentum: 0.95, nesterov: true, nsSteps: 5, weightDecay: 0.1 };
const ADAM = { ...ADAMW_DEFAULTS, weightDecay: 0.1, gradClip: 1.0 };

beforeAll(async () => {
  await initGpu();
});

// Tolerance: the f32 Newton–Schulz here and torch's f32 one sum in different orders, and the quintic's
// slope of 3.4 near zero amplifies those roundings up to 3.4⁵ ≈ 450× for the small singular values:
// measured, the updates differ by up to 5.5e-5 of their largest entry. Times Muon's lr (≤ 0.02)
// that is ≤ 1.2e-7 absolute (measured max 1.19e-7, one or two ulps of a parameter near 1), so a
// parameter of ~0.5 agrees to ~3e-6 relative (measured max 3.4e-6, entries near zero aside):
// rtol 1e-5, and atol 2e-7 (the absolute bound, with margin) for entries near zero.
const TOL = { rtol: 1e-5, atol: 2e-7 };

describe("Muon against test/reference/muon_ref.py (KellerJordan/Muon + torch.optim.AdamW)", () => {
  const h = readHeader(FIXTURE);
  const get = (name: string) => readTensor(h, name).data as Float32Array;
  let params: Tensor[], opt: Muon;
  beforeAll(() => {
    params = PARAMS.map(([n, s]) => keep(Tensor.from(get(`init.${n}`), s).param()));
    opt = new Muon(
      PARAMS.map(([n]) => n),
      params,
      ADAM,
      MUON,
    );
  });
  afterAll(() => {
    opt.dispose();
    for (const p of params) p.dispose();
  });

  test("the split: the layers' 2-D matrices to Muon; embeddings, head, norms, biases to AdamW", () => {
    expect(opt.muonNames).toEqual([
      "model.layers.0.self_attn.q_proj.weight",
      "model.layers.0.mlp.up_proj.weight",
      "model.layers.0.mlp.down_proj.weight",
    ]);
    expect(opt.adamw.names).toEqual([
      "model.embed_tokens.weight",
      "model.layers.0.input_layernorm.weight",
      "model.layers.0.self_attn.q_proj.bias",
      "lm_head.weight",
    ]);
    expect(usesMuon("model.layers.3.mlp.experts.0.up_proj.weight", [56, 32])).toBe(true);
    expect(usesMuon("model.embed_tokens.weight", [61, 32])).toBe(false);
  });

  test("every parameter after each of 3 clipped steps equals the reference's", async () => {
    for (let s = 0; s < 3; s++) {
      await scopeAsync(async () => {
        PARAMS.forEach(([n, shape], i) => (params[i]!.grad = keep(Tensor.from(get(`grad${s}.${n}`), shape))));
        opt.computeNorm();
        opt.update(LRS[s]!);
        for (const [i, [n]] of PARAMS.entries())
          expectAllClose(await params[i]!.toArray(), get(`step${s}.${n}`), { ...TOL, label: `step ${s + 1} ${n}` });
        for (const p of params) {
          p.grad!.dispose();
          p.grad = null;
        }
      });
    }
    expect(opt.step).toBe(3);
    // the momentum is plain f32 arithmetic on the (clipped) gradients: tighter
    const state = await opt.state();
    for (const n of opt.muonNames)
      expectAllClose(state[`muon_m.${n}`]!.data as Float32Array, get(`muon_m.${n}`), {
        rtol: 1e-6,
        atol: 1e-9,
        label: `muon_m.${n}`,
      });
    expect(Object.keys(state).filter((k) => k.startsWith("m.")).length).toBe(4);
  });
});

describe("Newton–Schulz", () => {
  // the quintic acts on each singular value alone: σ ← aσ + bσ³ + cσ⁵
  const quintic5 = (s: number) => {
    const [a, b, c] = NS_COEFFS;
    for (let k = 0; k < 5; k++) s = a * s + b * s ** 3 + c * s ** 5;
    return s;
  };

  for (const [R, C] of [
    [12, 20],
    [20, 12],
    [16, 16],
  ] as const)
    test(`(${R}, ${C}): singular values are the quintic's image of the input's, all in its [0.68, 1.14] band`, async () => {
      const g = randn(R * C, R * 100 + C);
      const fro = Math.sqrt(g.reduce((s, x) => s + x * x, 0));
      const x0 = g.map((v) => v / (fro + 1e-7));
      const out = await scopeAsync(async () => {
        const x = Tensor.from(x0, [R, C]);
        newtonSchulz(x, 5);
        return Float64Array.from(await x.toArray());
      });
      // newtonSchulzRef normalizes by ‖g‖_F itself: the same X
      expectAllClose(out, newtonSchulzRef(g, R, C, 5), { rtol: 0, atol: 2e-6, label: "against the f64 reference" });
      const sIn = singularValues(Float64Array.from(x0), R, C);
      const sOut = singularValues(out, R, C);
      expectAllClose(
        sOut,
        sIn.map(quintic5).sort((a, b) => a - b),
        { rtol: 0, atol: 1e-5, label: "σ" },
      );
      // the band: 5 quintic steps map every σ in [0.01, 1] into [0.6818, 1.1344] (scanned in f64);
      // a random matrix's smallest normalized σ is far above 0.01
      expect(Math.min(...sIn)).toBeGreaterThan(0.01);
      for (const s of sOut) {
        expect(s).toBeGreaterThan(0.68);
        expect(s).toBeLessThan(1.14);
      }
    });

  test("one step's CPU reference (muonRef) agrees with the GPU step", async () => {
    const [R, C] = [24, 8];
    const p0 = randn(R * C, 5),
      g = randn(R * C, 6);
    const p = keep(Tensor.from(p0, [R, C]).param());
    const opt = new Muon(["model.layers.0.mlp.up_proj.weight"], [p], { ...ADAM, gradClip: 0 }, MUON);
    await scopeAsync(async () => {
      p.grad = Tensor.from(g, [R, C]);
      opt.computeNorm();
      opt.update(5e-4);
      const want = muonRef(p0, g, new Float32Array(R * C), R, C, 5e-4 * (MUON.lr / MUON.maxLr), MUON);
      expectAllClose(await p.toArray(), want.p, { ...TOL, label: "p" });
      p.grad = null;
    });
    opt.dispose();
    p.dispose();
  });
});

/** Singular values of X (R, C), ascending: square roots of the eigenvalues of the smaller Gram matrix (Jacobi, f64). */
function singularValues(x: Float64Array, R: number, C: number): number[] {
  const n = Math.min(R, C);
  const G = new Float64Array(n * n);
  for (let i = 0; i < n; i++)
    for (let j = 0; j < n; j++) {
      let t = 0;
      if (R <= C) for (let k = 0; k < C; k++) t += x[i * C + k]! * x[j * C + k]!;
      else for (let k = 0; k < R; k++) t += x[k * C + i]! * x[k * C + j]!;
      G[i * n + j] = t;
    }
  for (let sweep = 0; sweep < 50; sweep++) {
    let off = 0;
    for (let p = 0; p < n; p++) for (let q = p + 1; q < n; q++) off += G[p * n + q]! ** 2;
    if (off < 1e-30) break;
    for (let p = 0; p < n; p++)
      for (let q = p + 1; q < n; q++) {
        const apq = G[p * n + q]!;
        if (Math.abs(apq) < 1e-300) continue;
        const theta = (G[q * n + q]! - G[p * n + p]!) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1),
          s = t * c;
        for (let k = 0; k < n; k++) {
          const gkp = G[k * n + p]!,
            gkq = G[k * n + q]!;
          G[k * n + p] = c * gkp - s * gkq;
          G[k * n + q] = s * gkp + c * gkq;
        }
        for (let k = 0; k < n; k++) {
          const gpk = G[p * n + k]!,
            gqk = G[q * n + k]!;
          G[p * n + k] = c * gpk - s * gqk;
          G[q * n + k] = s * gpk + c * gqk;
        }
      }
  }
  return Array.from({ length: n }, (_, i) => Math.sqrt(Math.max(0, G[i * n + i]!))).sort((a, b) => a - b);
}
