import type { ChalkInstance } from 'chalk';

/**
 * A terminal bar chart on a log scale: monthly costs span five or more orders of magnitude across
 * volumes, so linear bars would show only the largest. Plain ASCII, one fill character per series,
 * so it reads the same with NO_COLOR or in a CI log; colour is added only when the chalk allows it.
 */

export interface BarSeries {
  name: string;
  values: Array<number | null>;
}

const FILL = ['#', '=', '*', '+', '%', '@'];
const COLOURS = ['yellow', 'cyan', 'green', 'magenta', 'blue', 'red'] as const;

export function barChart(o: {
  title: string;
  categories: string[];
  series: BarSeries[];
  format: (n: number) => string;
  width?: number;
  c?: ChalkInstance;
  /** Categories to mark with "<- you". */
  highlight?: Set<number>;
}): string {
  const width = o.width ?? 40;
  const all = o.series.flatMap((s) => s.values).filter((v): v is number => v !== null && v > 0);
  if (all.length === 0) return `${o.title}\n(no data)\n`;
  const lo = Math.log10(Math.min(...all));
  const hi = Math.log10(Math.max(...all));
  const span = hi - lo || 1;
  const bar = (v: number | null) => {
    if (v === null || v <= 0) return 0;
    return 1 + Math.round(((Math.log10(v) - lo) / span) * (width - 1));
  };
  const catW = Math.max(...o.categories.map((c) => c.length));
  const serW = Math.max(...o.series.map((s) => s.name.length));
  const lines = [`${o.title} (log scale)`];
  o.categories.forEach((cat, i) => {
    o.series.forEach((s, k) => {
      const v = s.values[i] ?? null;
      const n = bar(v);
      let fill = FILL[k % FILL.length]!.repeat(n);
      if (o.c) fill = o.c[COLOURS[k % COLOURS.length]!](fill);
      const label = k === 0 ? cat.padStart(catW) : ' '.repeat(catW);
      const mark = k === 0 && o.highlight?.has(i) ? '  <- you' : '';
      lines.push(`${label}  ${s.name.padEnd(serW)} |${fill}${' '.repeat(width - n)} ${v === null ? 'n/a' : o.format(v)}${mark}`.trimEnd());
    });
  });
  lines.push(`${' '.repeat(catW)}  legend: ${o.series.map((s, k) => `${FILL[k % FILL.length]} ${s.name}`).join(', ')}`);
  return lines.join('\n') + '\n';
}
