// The terminal chart on known data, character for character: where each point lands (columns by
// step, rows by value, both rounded), the bridges between points, the axis labels and the legend.
import { describe, expect, test } from "bun:test";
import { chartSize, renderAscii } from "../../lib/plot/ascii.ts";
import type { Series } from "../../lib/plot/scale.ts";

const plain = { metric: "loss", smooth: 0, title: "loss per step", colour: false };

// a falls 4 → 1 over steps 0..40 with a validation point at 40; b rises 1 → 4. 30 columns minus the
// 1-wide labels and 2 for the axis leave 27 plot columns: step x lands in column round(x / 40 * 26);
// 7 rows: value y in row round((4 - y) / 3 * 6).
const series: Series[] = [
  {
    label: "a",
    pts: [
      [0, 4],
      [10, 3],
      [20, 2],
      [30, 1.5],
      [40, 1],
    ],
    evals: [[40, 1.25]],
  },
  {
    label: "b",
    pts: [
      [0, 1],
      [20, 2.5],
      [40, 4],
    ],
    evals: [],
  },
];

describe("renderAscii", () => {
  test("two runs and a validation point, without colour", () => {
    expect(renderAscii(series, { ...plain, width: 30, height: 7 })).toBe(
      [
        "   loss per step",
        "4 ┤••                      +++",
        "  │  ••••              ++++",
        "  │      •••       ++++",
        "  │         ••+++++",
        "  │       ++++ •••••",
        "  │   ++++          ••••••",
        "1 ┤+++                    •••o",
        "  └┬────────────┬────────────┬",
        "   0           20           40",
        "   • a  5 points, last 1, min 1, max 4",
        "   + b  3 points, last 4, min 1, max 4",
        "   o validation",
        "",
      ].join("\n"),
    );
  });

  test("steps are averaged per column, and the labels give what is drawn", () => {
    // value 100 - step over steps 0..100; the labels are 2 wide, leaving 21 columns: column c holds
    // steps 5c-2..5c+2 (mean 100 - 5c), but the first only 0..2 (mean 99) and the last 98..100
    // (mean 1), so the labels read 99 and 1, not 100 and 0. Row of mean y: round((99 - y) / 98 * 4).
    // No round value between them (a step of 100) and only the two ends on the x axis.
    const pts = Array.from({ length: 101 }, (_, i) => [i, 100 - i] as [number, number]);
    const out = renderAscii([{ label: "lin", pts, evals: [] }], { ...plain, title: "", width: 25, height: 5 });
    expect(out).toBe(
      [
        "99 ┤•••",
        "   │   •••••",
        "   │        •••••",
        "   │             •••••",
        " 1 ┤                  •••",
        "   └┬───────────────────┬",
        "    0                 100",
        "    • lin  101 points, last 0, min 0, max 100",
        "",
      ].join("\n"),
    );
  });

  test("round values label rows between the ends when they are two rows or more from a label", () => {
    // range [0, 10] over 11 rows: row r is 10 - r; niceTicks(0, 10, 2) gives 0, 5, 10, so 5 labels row 5
    const pts: [number, number][] = [
      [0, 10],
      [10, 0],
    ];
    const rows = renderAscii([{ label: "d", pts, evals: [] }], { ...plain, title: "", width: 20, height: 11 }).split(
      "\n",
    );
    expect(rows.slice(0, 11).map((r) => r.slice(0, 4))).toEqual([
      "10 ┤",
      "   │",
      "   │",
      "   │",
      "   │",
      " 5 ┤",
      "   │",
      "   │",
      "   │",
      "   │",
      " 0 ┤",
    ]);
  });

  test("colour paints each run's glyphs in its own colour and nothing else", () => {
    const two: Series[] = [
      {
        label: "a",
        pts: [
          [1, 1],
          [2, 2],
        ],
        evals: [],
      },
      {
        label: "b",
        pts: [
          [1, 2],
          [2, 1],
        ],
        evals: [],
      },
    ];
    const o = { ...plain, title: "t", width: 20, height: 2 };
    const coloured = renderAscii(two, { ...o, colour: true });
    // biome-ignore lint/suspicious/noControlCharactersInRegex: the ESC that starts a colour code
    expect(coloured.replace(/\x1b\[\d+m/g, "")).toBe(renderAscii(two, o));
    const rows = coloured.split("\n");
    expect(rows[1]!.startsWith("2 ┤\x1b[31m+\x1b[0m")).toBe(true); // b (red) starts high
    expect(rows[2]!.startsWith("1 ┤\x1b[34m•\x1b[0m")).toBe(true); // a (blue) starts low
    expect(rows[3]).toBe("  └┬───────────────┬"); // axes stay plain
  });

  test("a single point sits mid-chart, between labels 5% either side", () => {
    const out = renderAscii([{ label: "one", pts: [[5, 3]], evals: [] }], {
      ...plain,
      title: "",
      width: 20,
      height: 3,
    });
    expect(out).toBe(
      [
        "3.15 ┤",
        "     │•",
        "2.85 ┤",
        "     └┬─────────────",
        "      5",
        "      • one  1 point, last 3, min 3, max 3",
        "",
      ].join("\n"),
    );
  });

  test("no finite value: one line naming the metric", () => {
    expect(() =>
      renderAscii([{ label: "x", pts: [[1, Number.NaN]], evals: [] }], { ...plain, width: 40, height: 5 }),
    ).toThrow('no "loss" values in the metrics files');
  });
});

test("chartSize fits the terminal: at most 160 columns and 24 rows, room for the legend", () => {
  expect(chartSize(undefined, undefined, 2)).toEqual({ width: 80, height: 18 });
  expect(chartSize(200, 60, 3)).toEqual({ width: 160, height: 24 });
  expect(chartSize(30, 10, 2)).toEqual({ width: 40, height: 6 });
});
