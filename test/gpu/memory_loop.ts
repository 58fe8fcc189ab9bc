// Child process of memory.test.ts: N steps of y = x·W1·W2, loss = Σ y², W -= lr·dW; prints RSS figures.
import { initGpu, poolStats, flush, sizeClass } from "../../lib/gpu/index.ts";
import { Tensor, scopeAsync, noGrad, keep } from "../../lib/tensor/index.ts";
import { backward } from "../../lib/ops/backward.ts";
import { matmul, mul, sumRows, scale, addInto } from "../../lib/ops/index.ts";
import { randn } from "../lib/close.ts";

await initGpu();
const steps = Number(process.argv[2] ?? 2000);
const [B, D, H] = [16, 32, 48];
const W1 = keep(
  Tensor.from(
    randn(D * H, 1).map((x) => x * 0.2),
    [D, H],
  ).param(),
);
const W2 = keep(
  Tensor.from(
    randn(H * D, 2).map((x) => x * 0.2),
    [H, D],
  ).param(),
);
const X = randn(B * D, 3);
const x = keep(Tensor.from(X, [B, D]));
let first = 0,
  last = 0,
  rssWarm = 0;
for (let s = 0; s < steps; s++) {
  const lossVal = await scopeAsync(async () => {
    const y = matmul(matmul(x, W1), W2); // (B, D)
    const perRow = sumRows(mul(y, y)); // (B)
    backward(perRow);
    noGrad(() => {
      for (const w of [W1, W2]) {
        addInto(w, scale(w.grad!, -1e-3));
        w.grad!.dispose();
        w.grad = null;
      }
    });
    if (s === 0 || s === steps - 1) return (await perRow.toArray()).reduce((a, b) => a + b, 0);
    await flush(); // one submit per step, as a trainer does
    return 0;
  });
  if (s === 0) first = lossVal;
  if (s === steps - 1) last = lossVal;
  if (s === 200) {
    Bun.gc(true);
    rssWarm = process.memoryUsage().rss;
  }
}
Bun.gc(true);
const rss = process.memoryUsage().rss;
console.log(
  JSON.stringify({
    steps,
    rss_warm_mib: rssWarm / 2 ** 20,
    rss_end_mib: rss / 2 ** 20,
    rss_growth_mib: (rss - rssWarm) / 2 ** 20,
    pool_live_bytes: poolStats().liveBytes,
    param_bytes: [W1, W2, x].reduce((n, t) => n + sizeClass(t.bytes), 0),
    loss_first: first,
    loss_last: last,
  }),
);
process.exit(0);
