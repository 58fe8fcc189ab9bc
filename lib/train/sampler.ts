// The order rows are visited in: a fresh permutation every epoch, drawn from (seed, epoch), so a run
// resumed in the middle of an epoch rebuilds the same permutation and continues at the same place.
// Its whole state is {epoch, position}.
import { Rng } from "../base/rng.ts";

export interface SamplerState {
  epoch: number;
  position: number;
}

export class Sampler {
  epoch = 0;
  position = 0;
  private order: Uint32Array;

  constructor(
    readonly rows: number,
    readonly seed: number,
    readonly shuffle = true,
    state?: SamplerState,
  ) {
    if (rows <= 0) throw new Error("the dataset has no rows");
    if (state) {
      this.epoch = state.epoch;
      this.position = state.position;
    }
    this.order = this.permutation(this.epoch);
  }

  private permutation(epoch: number): Uint32Array {
    const p = new Uint32Array(this.rows);
    for (let i = 0; i < this.rows; i++) p[i] = i;
    // seed and epoch mixed so every epoch's order is its own
    if (this.shuffle) new Rng((this.seed * 1000003 + epoch * 7919 + 1) >>> 0).shuffle(p);
    return p;
  }

  /** Rows per epoch in batches of `size`; the last partial batch of an epoch is dropped. */
  batchesPerEpoch(size: number): number {
    return Math.floor(this.rows / size);
  }

  /** The next batch of row indices, or null at the end of the epoch (then call nextEpoch). */
  next(size: number): Uint32Array | null {
    if (this.position + size > this.rows) return null;
    const b = this.order.slice(this.position, this.position + size);
    this.position += size;
    return b;
  }

  nextEpoch(): void {
    this.epoch++;
    this.position = 0;
    this.order = this.permutation(this.epoch);
  }

  state(): SamplerState {
    return { epoch: this.epoch, position: this.position };
  }

  /** Go back to an earlier state (a step that did not finish gives its rows back). */
  restore(s: SamplerState): void {
    if (s.epoch !== this.epoch) this.order = this.permutation(s.epoch);
    this.epoch = s.epoch;
    this.position = s.position;
  }
}
