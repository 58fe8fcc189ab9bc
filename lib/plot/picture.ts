// A plot as a file: the format its name asks for (.svg or .png, nothing else, so a name never gets
// a picture of another kind), the bytes of that picture, and the summary line plot prints for it.
import { InputError } from "../base/errors.ts";
import { svgToPng } from "./png.ts";
import type { Series } from "./scale.ts";
import { type PlotOptions, renderSvg } from "./svg.ts";

export type PictureFormat = "svg" | "png";

/** The format `out` (given as `flag`) names by its extension. */
export function pictureFormat(out: string, flag = "--out"): PictureFormat {
  const ext = out.match(/\.([^./]+)$/)?.[1]?.toLowerCase();
  if (ext === "svg" || ext === "png") return ext;
  throw new InputError(`${flag} ${out}: plot draws SVG or PNG; give a name ending in .svg or .png`);
}

/** The picture of `series` in `format`, ready to write to `out`. */
export async function renderPicture(
  series: Series[],
  o: PlotOptions,
  format: PictureFormat,
  out: string,
): Promise<string | Uint8Array> {
  const svg = renderSvg(series, o);
  return format === "png" ? svgToPng(svg, out) : svg;
}

/** What plot reports on stdout after writing `out`: each run's label, point counts and last value. */
export function plotSummary(out: string, series: Series[]): Record<string, unknown> {
  return {
    event: "summary",
    out,
    runs: series.map((s) => ({
      label: s.label,
      points: s.pts.length,
      evals: s.evals.length,
      last: s.pts[s.pts.length - 1]?.[1] ?? null,
    })),
  };
}
