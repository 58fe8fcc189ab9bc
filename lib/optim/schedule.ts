// Learning-rate schedules, created by name. Every one warms up linearly from 0 to maxLr over
// `warmup` steps (step counts from 1), then:
//   cosine  decays along a half cosine to minRate·maxLr at totalSteps
//   sgdr    cosine with warm restarts (Loshchilov & Hutter 2017): cycles of `cycle` steps, each tMult
//           times longer than the last, each restarting at maxLr
//   wsd     warmup-stable-decay: holds maxLr, then decays linearly to minRate·maxLr over the last
//           decayFraction of the steps
//   constant
export type ScheduleName = "cosine" | "sgdr" | "wsd" | "constant";

export interface ScheduleConfig {
  name: ScheduleName;
  maxLr: number;
  minRate: number;
  warmup: number;
  totalSteps: number;
  cycle?: number; // sgdr: first cycle length (default: (totalSteps - warmup) / 3)
  tMult?: number; // sgdr: default 2
  decayFraction?: number; // wsd: default 0.2
}

export function lrAt(step: number, c: ScheduleConfig): number {
  const minLr = c.maxLr * c.minRate;
  if (c.warmup > 0 && step <= c.warmup) return (c.maxLr * step) / c.warmup;
  const t = step - c.warmup;
  const span = Math.max(1, c.totalSteps - c.warmup);
  const cosine = (frac: number) =>
    minLr + 0.5 * (c.maxLr - minLr) * (1 + Math.cos(Math.PI * Math.min(1, Math.max(0, frac))));
  switch (c.name) {
    case "constant":
      return c.maxLr;
    case "cosine":
      return cosine(t / span);
    case "sgdr": {
      const mult = c.tMult ?? 2;
      let len = c.cycle ?? Math.max(1, Math.floor(span / 3));
      let start = 0;
      while (t > start + len) {
        start += len;
        len *= mult;
      }
      return cosine((t - start) / len);
    }
    case "wsd": {
      const decay = Math.max(1, Math.round(span * (c.decayFraction ?? 0.2)));
      const stableEnd = span - decay;
      if (t <= stableEnd) return c.maxLr;
      return c.maxLr - (c.maxLr - minLr) * Math.min(1, (t - stableEnd) / decay);
    }
    default: {
      const never: never = c.name;
      throw new Error(`unknown schedule ${never}`);
    }
  }
}
