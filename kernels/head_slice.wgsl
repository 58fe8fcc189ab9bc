// head_slice: a contiguous range of channels of every head vector, and its gradient.
//   MODE 0 (gather):  out[n, h, c] = x[n, h, OFF + c]          for c < W;   x (N, H, DX), out (N, H, W)
//   MODE 1 (scatter): dx[n, h, OFF + c] += d[n, h, c]   for c < W, d's rows SW wide (dx zeroed by the caller)
//   MODE 2 (latent key): k[n, h, c] = x[n, h, c] for c < W (the no-RoPE part), k[n, h, W + c] = r[n, c]
//                        for c < DR (the RoPE key shared by every head); k (N, H, W + DR)
//   MODE 3 (its gradient for r): dr[n, c] = Σ_h dk[n, h, W + c]
// Bindings: 0 src (read), 1 r (read; MODE 2 only, else anything), 2 dst (read_write), 3 uniform Params.
// Grid: strideGrid(elements written).
// CPU reference: headSliceRef / latentKeyRef in lib/ops/head_slice.ts.

struct Params { N: u32, H: u32, DX: u32, W: u32, OFF: u32, DR: u32, SW: u32 }

@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read> r: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

const MODE: u32 = 0u;
override WG: u32 = 256u;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nw: vec3u) {
  let stride = nw.x * WG;
  if (MODE == 0u || MODE == 1u) {
    let total = p.N * p.H * p.W;
    for (var e = gid.x; e < total; e += stride) {
      let c = e % p.W;
      let nh = e / p.W;
      if (MODE == 0u) { dst[e] = src[nh * p.DX + p.OFF + c]; } else { dst[nh * p.DX + p.OFF + c] += src[nh * p.SW + c]; }
    }
  } else if (MODE == 2u) {
    let KD = p.W + p.DR;
    let total = p.N * p.H * KD;
    for (var e = gid.x; e < total; e += stride) {
      let c = e % KD;
      let nh = e / KD;
      if (c < p.W) { dst[e] = src[nh * p.DX + c]; } else { dst[e] = r[(nh / p.H) * p.DR + c - p.W]; }
    }
  } else {
    let KD = p.W + p.DR;
    let total = p.N * p.DR;
    for (var e = gid.x; e < total; e += stride) {
      let c = e % p.DR;
      let n = e / p.DR;
      var s = 0.0;
      for (var h = 0u; h < p.H; h++) { s += src[(n * p.H + h) * KD + p.W + c]; }
      dst[e] = s;
    }
  }
}
