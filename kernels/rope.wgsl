// rope: rotary position embedding on R dims starting at OFF of each head vector x (D) at position p
// (all of it for Llama; the RoPE part of a latent-attention query or key otherwise), angle_i =
// p·inv_freq[i], cos and sin both multiplied by SCALE (YaRN's attention factor; 1 otherwise).
// Two pairings of the R dims, with half = R/2:
//   rotate-half (Hugging Face Llama, Qwen, Mistral): pair (OFF + i, OFF + i + half)
//   INTERLEAVED (DeepSeek-V2's checkpoints, GPT-J):  pair (OFF + 2i, OFF + 2i + 1)
//   out[a] = x[a] * cos - x[b] * sin,  out[b] = x[b] * cos + x[a] * sin   for each pair (a, b)
// DeepSeek-V2's own code de-interleaves its RoPE channels and then rotates halves; rotating the
// interleaved pairs in place gives the same vectors up to one fixed permutation of the R dims, applied
// to queries and keys alike, so every score q·k is the same.
// Only those R dims are written (the caller copies the rest when R < D).
// SIGN = -1 rotates by -angle: the backward (the transpose of a rotation is its inverse; SCALE stays).
// Bindings: 0 x (read, (N, NH, D)), 1 pos (read, (N) i32), 2 inv_freq (read, (R/2)),
//   3 out (read_write, (N, NH, D)), 4 uniform Params.
// Grid: strideGrid(N * NH * R/2).
// CPU reference: ropeRef in lib/ops/rope.ts.

struct Params { N: u32, NH: u32, D: u32, R: u32, OFF: u32, SCALE: f32 }

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> pos: array<i32>;
@group(0) @binding(2) var<storage, read> inv_freq: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

const SIGN: f32 = 1.0;
const INTERLEAVED: bool = false;
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
    let c = cos(ang) * p.SCALE;
    let s = SIGN * sin(ang) * p.SCALE;
    var ia = base + i;
    var ib = base + i + half;
    if (INTERLEAVED) {
      ia = base + 2u * i;
      ib = ia + 1u;
    }
    let a = x[ia];
    let b = x[ib];
    out[ia] = a * c - b * s;
    out[ib] = b * c + a * s;
  }
}
