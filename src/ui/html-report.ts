/**
 * A self-contained HTML cost report: inline CSS and an inline SVG line chart of monthly cost against
 * tokens/month on log-log axes, so it opens from a file or an email attachment with no network.
 */

export interface LineSeries {
  name: string;
  colour: string;
  points: Array<[number, number]>;
}

export interface HtmlReport {
  title: string;
  generatedAt: string;
  summary: string[];
  series: LineSeries[];
  /** Vertical markers, e.g. the user's volume and break-even volumes. */
  markers: Array<{ x: number; label: string }>;
  tables: Array<{ caption: string; headers: string[]; rows: string[][] }>;
}

const esc = (s: string) => s.replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);

const fmtAxis = (v: number, usd: boolean) => {
  const units: Array<[number, string]> = [[1e12, 'T'], [1e9, 'B'], [1e6, 'M'], [1e3, 'K']];
  for (const [d, s] of units) if (v >= d) return `${usd ? '$' : ''}${Number((v / d).toPrecision(3))}${s}`;
  return `${usd ? '$' : ''}${Number(v.toPrecision(3))}`;
};

/**
 * The cost chart. The plot area holds only data and grid: marker labels sit in a band above it
 * (one row each, so two close markers do not overprint) and the legend in a row below the axis
 * title, so no line ever runs through text.
 */
function svgChart(series: LineSeries[], markers: HtmlReport['markers'], w = 820, plotH = 370): string {
  const ROW = 16;
  const m = { l: 70, r: 20, t: 12 + ROW * markers.length, b: 50 + ROW + 8 };
  const h = m.t + plotH + m.b;
  const pts = series.flatMap((s) => s.points).filter(([x, y]) => x > 0 && y > 0);
  if (pts.length === 0) return `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}"></svg>`;
  const x0 = Math.floor(Math.log10(Math.min(...pts.map((p) => p[0]))));
  const x1 = Math.ceil(Math.log10(Math.max(...pts.map((p) => p[0]))));
  const y0 = Math.floor(Math.log10(Math.min(...pts.map((p) => p[1]))));
  const y1 = Math.ceil(Math.log10(Math.max(...pts.map((p) => p[1]))));
  const sx = (x: number) => m.l + ((Math.log10(x) - x0) / (x1 - x0 || 1)) * (w - m.l - m.r);
  const sy = (y: number) => h - m.b - ((Math.log10(y) - y0) / (y1 - y0 || 1)) * (h - m.t - m.b);
  const parts: string[] = [];
  for (let e = x0; e <= x1; e++) {
    const x = sx(10 ** e).toFixed(1);
    parts.push(`<line x1="${x}" y1="${m.t}" x2="${x}" y2="${h - m.b}" class="grid"/>`);
    parts.push(`<text x="${x}" y="${h - m.b + 18}" text-anchor="middle">${fmtAxis(10 ** e, false)}</text>`);
  }
  for (let e = y0; e <= y1; e++) {
    const y = sy(10 ** e).toFixed(1);
    parts.push(`<line x1="${m.l}" y1="${y}" x2="${w - m.r}" y2="${y}" class="grid"/>`);
    parts.push(`<text x="${m.l - 6}" y="${y}" text-anchor="end" dominant-baseline="middle">${fmtAxis(10 ** e, true)}</text>`);
  }
  parts.push(`<text x="${(m.l + w - m.r) / 2}" y="${h - m.b + 38}" text-anchor="middle">tokens per month</text>`);
  parts.push(`<text x="14" y="${(m.t + h - m.b) / 2}" text-anchor="middle" transform="rotate(-90 14 ${(m.t + h - m.b) / 2})">USD per month</text>`);
  markers.forEach((mk, row) => {
    if (!(mk.x > 0) || Math.log10(mk.x) < x0 || Math.log10(mk.x) > x1) return;
    const x = sx(mk.x).toFixed(1);
    const labelY = 12 + row * ROW;
    parts.push(`<line x1="${x}" y1="${labelY + 4}" x2="${x}" y2="${h - m.b}" class="marker"/>`);
    // Anchored toward the middle of the chart so a label near either edge stays inside it.
    const anchor = Number(x) < w / 2 ? 'start' : 'end';
    parts.push(`<text x="${x}" y="${labelY}" text-anchor="${anchor}" class="marker-label">${esc(mk.label)}</text>`);
  });
  series.forEach((s) => {
    const good = s.points.filter(([x, y]) => x > 0 && y > 0);
    if (good.length === 0) return;
    const d = good.map(([x, y], i) => `${i ? 'L' : 'M'}${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(' ');
    parts.push(`<path d="${d}" fill="none" stroke="${s.colour}" stroke-width="2" data-series="${esc(s.name)}"/>`);
  });
  let lx = m.l;
  const ly = h - 10;
  for (const s of series) {
    parts.push(`<rect x="${lx}" y="${ly - 6}" width="14" height="4" fill="${s.colour}"/>`);
    parts.push(`<text x="${lx + 20}" y="${ly}" dominant-baseline="middle" class="legend">${esc(s.name)}</text>`);
    // ~7 px a character at 12-14 px system-ui, plus the swatch and a gap.
    lx += 20 + s.name.length * 7 + 24;
  }
  return `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${w} ${h}" width="${w}" height="${h}" role="img" aria-label="monthly cost against tokens per month, log-log">${parts.join('')}</svg>`;
}

export function renderHtmlReport(r: HtmlReport): string {
  const tables = r.tables
    .map(
      (t) =>
        `<table><caption>${esc(t.caption)}</caption><thead><tr>${t.headers.map((h) => `<th>${esc(h)}</th>`).join('')}</tr></thead><tbody>${t.rows
          .map((row) => `<tr>${row.map((c) => `<td>${esc(c)}</td>`).join('')}</tr>`)
          .join('')}</tbody></table>`,
    )
    .join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(r.title)}</title>
<style>
body{font:14px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:900px;color:#222}
h1{font-size:1.4rem} table{border-collapse:collapse;margin:1.2rem 0;width:100%}
caption{text-align:left;font-weight:600;padding:.3rem 0} th,td{border-bottom:1px solid #ddd;padding:.25rem .5rem;text-align:left;vertical-align:top}
svg text{font-size:11px;fill:#444} svg .grid{stroke:#eee} svg .marker{stroke:#999;stroke-dasharray:4 3} svg .marker-label{fill:#777}
.summary li{margin:.2rem 0}
</style></head><body>
<h1>${esc(r.title)}</h1>
<p>Generated ${esc(r.generatedAt)} by embedctl cost-report.</p>
<ul class="summary">${r.summary.map((s) => `<li>${esc(s)}</li>`).join('')}</ul>
<figure>${svgChart(r.series, r.markers)}<figcaption>Monthly cost against volume, log-log axes.</figcaption></figure>
${tables}
</body></html>
`;
}
