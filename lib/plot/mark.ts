// How plot recognises a picture it wrote, so that --overwrite replaces only those (lib/io/out_dir.ts)
// and never a figure someone made by hand: an SVG carries PLOT_MARK (a comment) near its top, a PNG
// a tEXt chunk "Software: bunlm plot" right after its header chunk (png.ts).
import { closeSync, constants, fstatSync, openSync, readSync } from "node:fs";

export const PLOT_MARK = "<!-- bunlm plot -->";
export const PNG_SOFTWARE = "bunlm plot";

/** Whether the start of a file (its first KiB is enough) is one of plot's pictures. */
export function isPlotHead(head: Uint8Array): boolean {
  const text = Buffer.from(head).toString("latin1");
  return text.includes(PLOT_MARK) || (text.startsWith("\x89PNG") && text.includes(`Software\0${PNG_SOFTWARE}`));
}

/** Whether `file` is one of plot's pictures; false for anything that is not a readable regular file. */
export function isPlotFile(file: string): boolean {
  let fd: number;
  try {
    // O_NONBLOCK: a FIFO answers at once (and is then refused) instead of waiting for a writer
    fd = openSync(file, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch {
    return false;
  }
  try {
    if (!fstatSync(fd).isFile()) return false;
    const head = Buffer.alloc(1024);
    return isPlotHead(head.subarray(0, readSync(fd, head, 0, head.length, 0)));
  } finally {
    closeSync(fd);
  }
}
