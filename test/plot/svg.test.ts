// The SVG picture: coordinates of known points, smoothing's two curves, escaping, the mark, the
// file name policy and the summary line.
import { describe, expect, test } from "bun:test";
import { PLOT_MARK } from "../../lib/plot/mark.ts";
import { pictureFormat, plotSummary } from "../../lib/plot/picture.ts";
import type { Series } from "../../lib/plot/scale.ts";
import { renderSvg } from "../../lib/plot/svg.ts";

const o = { metric: "loss", smooth: 0, title: "loss per step" };
const paths = (svg: string) => [...svg.matchAll(/<path d="([^"]+)"[^>]*stroke-width="(\d)"/g)].map((m) => [m[1], m[2]]);

describe("renderSvg", () => {
  test("points land where the axes say", () => {
    // plot area x 70..630, y 40..425; values 1..3 padded by 5% of the range to 0.9..3.1:
    // Y(1) = 40 + (1 - 0.1 / 2.2) * 385 = 407.5, Y(3) = 40 + (1 - 2.1 / 2.2) * 385 = 57.5
    const s: Series[] = [
      {
        label: "run",
        pts: [
          [0, 1],
          [10, 3],
        ],
        evals: [],
      },
    ];
    const svg = renderSvg(s, o);
    expect(svg.split("\n")[1]).toBe(PLOT_MARK);
    expect(paths(svg)).toEqual([["M70.0,407.5L630.0,57.5", "2"]]);
    expect(svg).toContain(">run</text>");
    expect(svg).not.toContain("validation");
    // x ticks are whole steps: 0, 2, 4, …, 10, never 2.5
    const xt = [...svg.matchAll(/<text x="[\d.]+" y="441" text-anchor="middle">([^<]+)</g)].map((m) => m[1]);
    expect(xt).toEqual(["0", "2", "4", "6", "8", "10"]);
  });

  test("smoothing keeps the raw curve, faint, under the smoothed one; NaN is skipped", () => {
    const s: Series[] = [
      {
        label: "run",
        pts: [
          [0, 1],
          [5, Number.NaN],
          [10, 3],
        ],
        evals: [[10, 2]],
      },
    ];
    const svg = renderSvg(s, { ...o, smooth: 0.5 });
    // smoothed: 1, then 0.5 * 1 + 0.5 * 3 = 2 → Y(2) = 40 + (1 - 1.1 / 2.2) * 385 = 232.5
    expect(paths(svg)).toEqual([
      ["M70.0,407.5L630.0,57.5", "1"],
      ["M70.0,407.5L630.0,232.5", "2"],
    ]);
    expect(svg).toContain('<circle cx="630" cy="232.5" r="4"');
    expect(svg).toContain(">validation</text>");
  });

  test("labels and titles are escaped", () => {
    const svg = renderSvg([{ label: 'a<b>&"c"', pts: [[1, 1]], evals: [] }], { ...o, title: "x < y & z" });
    expect(svg).toContain(">a&lt;b&gt;&amp;&quot;c&quot;</text>");
    expect(svg).toContain(">x &lt; y &amp; z</text>");
  });

  test("nothing to draw: one line naming the metric", () => {
    expect(() => renderSvg([{ label: "a", pts: [], evals: [] }], { ...o, metric: "grad_norm" })).toThrow(
      'no "grad_norm" values in the metrics files',
    );
  });
});

test("pictureFormat: .svg or .png, whatever the case; any other name is refused", () => {
  expect(pictureFormat("runs/loss.svg")).toBe("svg");
  expect(pictureFormat("LOSS.PNG")).toBe("png");
  for (const bad of ["loss.jpg", "loss", "runs.png/loss", "loss.svg.gz"])
    expect(() => pictureFormat(bad)).toThrow(`--out ${bad}: plot draws SVG or PNG; give a name ending in .svg or .png`);
});

test("plotSummary: label, points, validation points and the last raw value of each run", () => {
  const s: Series[] = [
    {
      label: "pt",
      pts: [
        [1, 5],
        [2, 4.5],
      ],
      evals: [[2, 4.7]],
    },
    { label: "sft", pts: [], evals: [] },
  ];
  expect(plotSummary("x.svg", s)).toEqual({
    event: "summary",
    out: "x.svg",
    runs: [
      { label: "pt", points: 2, evals: 1, last: 4.5 },
      { label: "sft", points: 0, evals: 0, last: null },
    ],
  });
});
