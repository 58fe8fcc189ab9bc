// rope: rotary position embedding in Hugging Face's rotate-half layout (what LlamaForCausalLM uses):
// for each head vector x (D) at position p, on its R dims starting at OFF (all of it for Llama; the
// RoPE part of a latent-attention query or key otherwise), with half = R/2, angle_i = p·inv_freq[i]:
//   out[OFF + i]        = x[OFF + i] * cos - x[OFF + i + half] * sin
//   out[OFF + i + half] = x[OFF + i + half] * cos + x[OFF + i] * sin
// Only those R dims are written (the caller copies the rest when R < D).
// SIGN = -1 rotates by -angle: the backward (the transpose of a rotation is its inverse).
// Bindings: 0 x (read, (N, NH, D)), 1 pos (read, (N) i32), 2 inv_freq (read, (R/2)),
//   3 out (read_write, (N, NH, D)), 4 uniform Params.
// Grid: strideGrid(N * NH * R/2).
// CPU reference: ropeRef in lib/ops/rope.ts.

struct Params { N: u32, NH: u32, D: u32, R: u32, OFF: u32 }

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> pos: array<i32>;
@group(0) @binding(2) var<storage, read> inv_freq: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

const SIGN: f32 = 1.0;
override WG: u32 = 256u;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nw: vec3u) {
  let half = p.R / 2u;
  let total = p.N * p.NH * half;
  for (var e = gid.x; e < total; e += nw.x * WG) {
    let i = e % half;
    let th = e / half; // token * NH + head
    let t = th / p.NH;
    let base = th * p.D + p.OFF;
    let ang = f32(pos[t]) * inv_freq[i];
    let c = cos(ang);
    let s = SIGN * sin(ang);
    let a = x[base + i];
    let b = x[base + i + half];
    out[base + i] = a * c - b * s;
    out[base + i + half] = b * c + a * s;
  }
}
