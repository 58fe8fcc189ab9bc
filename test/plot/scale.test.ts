// The pieces every plot renderer shares: smoothing, the drawn curve, tick values, value labels.
import { describe, expect, test } from "bun:test";
import { curve, ema, fmtValue, niceTicks, smoothFactor } from "../../lib/plot/scale.ts";

describe("ema", () => {
  test("s_0 = y_0, then a s + (1 - a) y", () => {
    expect(ema([1, 2, 3], 0.5)).toEqual([1, 1.5, 2.25]);
    expect(ema([4, 8], 0)).toEqual([4, 8]);
    expect(ema([], 0.9)).toEqual([]);
  });
});

describe("curve", () => {
  test("drops non-finite points before smoothing, so one NaN does not poison the rest", () => {
    const pts: [number, number][] = [
      [1, 1],
      [2, Number.NaN],
      [3, 3],
      [4, Number.POSITIVE_INFINITY],
      [5, 5],
    ];
    expect(curve(pts, 0)).toEqual([
      [1, 1],
      [3, 3],
      [5, 5],
    ]);
    expect(curve(pts, 0.5)).toEqual([
      [1, 1],
      [3, 2],
      [5, 3.5],
    ]);
  });
});

describe("niceTicks", () => {
  test("steps of 1, 2, 2.5 or 5 times a power of ten, without float noise", () => {
    expect(niceTicks(0, 1)).toEqual([0, 0.2, 0.4, 0.6, 0.8, 1]);
    expect(niceTicks(1.7, 7.4)).toEqual([2, 3, 4, 5, 6, 7]);
    expect(niceTicks(0, 1000, 4)).toEqual([0, 250, 500, 750, 1000]);
    expect(niceTicks(3, 3)).toEqual([3, 3.2, 3.4, 3.6, 3.8, 4]); // an empty range widens to one unit
  });
  test("integer ticks for optimizer steps: never a step of 0.5 or 2.5", () => {
    expect(niceTicks(1, 4, 6, true)).toEqual([1, 2, 3, 4]);
    expect(niceTicks(0, 10, 4, true)).toEqual([0, 2, 4, 6, 8, 10]);
    expect(niceTicks(0, 1000, 4, true)).toEqual([0, 250, 500, 750, 1000]);
  });
});

test("fmtValue: at most 5 significant digits, exponent form far from 1", () => {
  expect(fmtValue(6.354950428728027)).toBe("6.355");
  expect(fmtValue(12345.6)).toBe("12346");
  expect(fmtValue(0.0003)).toBe("0.0003");
  expect(fmtValue(3e-6)).toBe("3e-6");
  expect(fmtValue(-1.2345e-5)).toBe("-1.23e-5");
  expect(fmtValue(1234567)).toBe("1.23e+6");
  expect(fmtValue(0)).toBe("0");
});

test("smoothFactor: a number in [0, 1)", () => {
  expect(smoothFactor("0")).toBe(0);
  expect(smoothFactor("0.6")).toBe(0.6);
  for (const bad of ["1", "-0.1", "", "abc", "NaN"])
    expect(() => smoothFactor(bad)).toThrow(`--smooth ${bad}: expected a number in [0, 1)`);
});
