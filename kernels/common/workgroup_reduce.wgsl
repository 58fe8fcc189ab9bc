// Included by the row kernels (rmsnorm, cross_entropy, reduce_rows, loss_reduce, grad_norm,
// tensor_stats): a reduction across the WG threads of a workgroup (the includer declares WG, a power
// of two). Each thread passes its partial and every thread gets the total. The tree's order is fixed,
// so results are deterministic. Call from uniform control flow: it holds barriers. The scratch array
// is reused by the next call, hence the barrier after the total is read.
var<workgroup> red: array<f32, WG>;

fn workgroupSum(v: f32, li: u32) -> f32 {
  red[li] = v;
  workgroupBarrier();
  for (var k = WG / 2u; k > 0u; k >>= 1u) {
    if (li < k) { red[li] += red[li + k]; }
    workgroupBarrier();
  }
  let total = red[0];
  workgroupBarrier();
  return total;
}

fn workgroupMax(v: f32, li: u32) -> f32 {
  red[li] = v;
  workgroupBarrier();
  for (var k = WG / 2u; k > 0u; k >>= 1u) {
    if (li < k) { red[li] = max(red[li], red[li + k]); }
    workgroupBarrier();
  }
  let total = red[0];
  workgroupBarrier();
  return total;
}

fn workgroupMin(v: f32, li: u32) -> f32 {
  red[li] = v;
  workgroupBarrier();
  for (var k = WG / 2u; k > 0u; k >>= 1u) {
    if (li < k) { red[li] = min(red[li], red[li + k]); }
    workgroupBarrier();
  }
  let total = red[0];
  workgroupBarrier();
  return total;
}
