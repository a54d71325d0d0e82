import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli } from './helpers/cli.js';

const CHROMIUM = '/usr/bin/chromium';
const dir = mkdtempSync(join(tmpdir(), 'embedctl-cost-html-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('cost-report --html in a browser', () => {
  // Chromium is not part of this machine's image; .ci/run installs it where the check should run.
  it.skipIf(!existsSync(CHROMIUM))('renders the SVG chart with a line per series (headless Chromium, screenshot)', async () => {
    const out = join(dir, 'report.html');
    const r = await runCli(['cost-report', '--tokens-per-month', '2e9', '--html', out], { cwd: dir });
    expect(r.code, r.stderr).toBe(0);
    const { chromium } = await import('playwright-core');
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu'] });
    try {
      const page = await browser.newPage({ viewport: { width: 1000, height: 900 } });
      await page.goto(pathToFileURL(out).href);
      const box = await page.locator('figure svg').boundingBox();
      expect(box!.width).toBeGreaterThan(100);
      expect(box!.height).toBeGreaterThan(100);
      const lines = await page.$$eval('figure svg path[data-series]', (ps) =>
        // runs in the page; the DOM's SVG types are not in this project's lib
        ps.map((p) => ({ name: p.getAttribute('data-series'), length: (p as unknown as { getTotalLength(): number }).getTotalLength() })),
      );
      expect(lines.map((l) => l.name)).toEqual([
        'hosted (jina-embeddings-v3)',
        'self-hosted g4dn.xlarge on-demand',
        'self-hosted g4dn.xlarge reserved 1y',
        'self-hosted g4dn.xlarge spot',
      ]);
      for (const l of lines) expect(l.length, l.name!).toBeGreaterThan(50);
      const png = join(dir, 'cost-report.png');
      await page.screenshot({ path: png, fullPage: true });
      expect(readFileSync(png).subarray(1, 4).toString()).toBe('PNG');
    } finally {
      await browser.close();
    }
  });
});
