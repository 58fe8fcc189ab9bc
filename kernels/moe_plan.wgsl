// moe_plan: the dispatch plan of a mixture-of-experts layer, a stable counting sort of its N·K
// routing slots (slot s = t·K + j: token t's j-th expert) by expert id, so each expert's tokens are
// one contiguous block of rows, in token order (deterministic, no atomics):
//   counts[e]   = #slots routed to e (f32, for the load metrics and the auxiliary loss)
//   offsets[e]  = Σ_{e' < e} counts[e'],  offsets[E] = S     (u32, (E + 1))
//   rows[offsets[e] + i] = the i-th slot (in slot order) routed to e   (u32, (S)): row → slot
//   slot_row[s] = the row slot s got                                      (u32, (S)): slot → row
// One workgroup; thread e (strided) scans every slot for its expert: O(E·S), fine at the sizes
// routers have (E ≤ a few hundred); a storage barrier separates counting from placing.
// Bindings: 0 experts (read, u32 (S)), 1 rows (read_write), 2 slot_row (read_write), 3 offsets
//   (read_write), 4 counts (read_write), 5 uniform Params.
// Grid: (1).
// CPU reference: planRef in lib/ops/moe.ts.

struct Params { S: u32, E: u32 }

@group(0) @binding(0) var<storage, read> experts: array<u32>;
@group(0) @binding(1) var<storage, read_write> rows: array<u32>;
@group(0) @binding(2) var<storage, read_write> slot_row: array<u32>;
@group(0) @binding(3) var<storage, read_write> offsets: array<u32>;
@group(0) @binding(4) var<storage, read_write> counts: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;

override WG: u32 = 256u;

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_id) lid: vec3u) {
  for (var e = lid.x; e < p.E; e += WG) {
    var n = 0u;
    for (var s = 0u; s < p.S; s++) { if (experts[s] == e) { n++; } }
    counts[e] = f32(n);
  }
  storageBarrier();
  workgroupBarrier();
  for (var e = lid.x; e < p.E; e += WG) {
    var start = 0u;
    for (var i = 0u; i < e; i++) { start += u32(counts[i]); }
    var at = start;
    for (var s = 0u; s < p.S; s++) {
      if (experts[s] == e) {
        rows[at] = s;
        slot_row[s] = at;
        at++;
      }
    }
  }
  storageBarrier();
  workgroupBarrier();
  for (var e = lid.x; e <= p.E; e += WG) {
    var start = 0u;
    for (var i = 0u; i < e; i++) { start += u32(counts[i]); }
    offsets[e] = start;
  }
}
