// elementwise: out[i] = a[i] OP b[i] for i < n (same shapes), or out[i] = alpha * a[i] with OP 2.
//   OP 0: add   OP 1: mul   OP 2: scale (b unused, bind any buffer)   OP 3: fill (out[i] = alpha)
//   OP 4: accumulate (out[i] += a[i]; b unused)
// Bindings: 0 a (read, (n)), 1 b (read, (n)), 2 out (read_write, (n)), 3 uniform Params.
// Grid: (min(ceil(n/256), 4096)); a grid-stride loop covers the rest.
// CPU reference: addRef / mulRef / scaleRef in lib/ops/elementwise.ts.

struct Params { n: u32, alpha: f32 }

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

const OP: u32 = 0u;
override WG: u32 = 256u;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nw: vec3u) {
  let stride = nw.x * WG;
  for (var i = gid.x; i < p.n; i += stride) {
    if (OP == 0u) { out[i] = a[i] + b[i]; }
    else if (OP == 1u) { out[i] = a[i] * b[i]; }
    else if (OP == 2u) { out[i] = p.alpha * a[i]; }
    else if (OP == 3u) { out[i] = p.alpha; }
    else { out[i] += a[i]; }
  }
}
