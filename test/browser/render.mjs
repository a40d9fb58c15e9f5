// render.mjs renders Markdown files as GitHub shows them, in headless
// Chromium: GitHub-flavoured Markdown to HTML (marked, gfm), GitHub's
// Markdown stylesheet, and each ```mermaid block drawn by the pinned Mermaid
// the way GitHub draws it (its own frame, the width of the text, the
// default theme). It saves a full-page PNG of each file and prints, as JSON,
// what it found in each diagram: a parse error, the title and whether it
// fits, the x labels and whether any two overlap.
//
//   node render.mjs --out DIR --mermaid mermaid|mermaid10 [--width PX] FILE.md...
//
// It is called by browser_test.go; the checks are made there.
import { readFileSync, mkdirSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { marked } from 'marked';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);

function args(argv) {
  const o = { out: '', mermaid: 'mermaid', width: 0, files: [], browser: process.env.CHROMIUM || '/usr/bin/chromium' };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--out') o.out = argv[++i];
    else if (a === '--mermaid') o.mermaid = argv[++i];
    else if (a === '--width') o.width = Number(argv[++i]);
    else if (a === '--browser') o.browser = argv[++i];
    else o.files.push(a);
  }
  if (!o.out || o.files.length === 0) {
    console.error('usage: node render.mjs --out DIR --mermaid mermaid|mermaid10 [--width PX] [--browser PATH] FILE.md...');
    process.exit(2);
  }
  return o;
}

const opts = args(process.argv.slice(2));
const mermaidPkg = JSON.parse(readFileSync(require.resolve(`${opts.mermaid}/package.json`), 'utf8'));
const mermaidJS = require.resolve(`${opts.mermaid}/dist/mermaid.min.js`);
const css = readFileSync(join(here, 'node_modules/github-markdown-css/github-markdown-light.css'), 'utf8');

// width is the Markdown body's width on GitHub: a pull request's or an
// issue's comment column is about 780 px wide at a 1280 px window, a job
// summary's about 920 px.
function widthOf(file) {
  if (opts.width) return opts.width;
  if (file.endsWith('.txt')) return 1100;
  return /^(comment|issue)/.test(basename(file)) ? 780 : 920;
}

function esc(s) {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

// terminal renders a plain-text file (a terminal's output) as a terminal
// shows it.
function terminal(text, width) {
  return `<!doctype html><html><head><meta charset="utf-8"><style>
body { margin: 0; background: #0d1117; }
pre { box-sizing: border-box; width: ${width}px; margin: 0; padding: 16px; color: #e6edf3; font: 13px/1.45 'DejaVu Sans Mono', monospace; white-space: pre-wrap; }
</style></head><body><pre>${esc(text)}</pre></body></html>`;
}

// shell is the page every Markdown file is drawn in, one after the
// other, so that Mermaid is loaded once.
function shell() {
  return `<!doctype html><html><head><meta charset="utf-8"><style>${css}
body { margin: 0; background: #fff; }
.markdown-body { box-sizing: border-box; padding: 16px; }
.mermaid-frame { border: 1px solid #d1d9e0; border-radius: 6px; margin: 0 0 16px; padding: 8px; }
.mermaid-error { color: #d1242f; white-space: pre-wrap; font-family: monospace; }
</style></head><body><article class="markdown-body"></article></body></html>`;
}

// drawAll runs in the page: it replaces each mermaid code block with its
// drawing, as GitHub does, and measures it.
async function drawAll([html, width, k]) {
  const article = document.querySelector('article');
  article.style.width = width + 'px';
  article.innerHTML = html;
  window.scrollTo(0, 0);
  const m = window.mermaid;
  m.initialize({ startOnLoad: false, theme: 'default', securityLevel: 'strict' });
  const found = [];
  const blocks = [...document.querySelectorAll('pre > code.language-mermaid')];
  for (let i = 0; i < blocks.length; i++) {
    const code = blocks[i].textContent;
    const pre = blocks[i].parentElement;
    const frame = document.createElement('div');
    frame.className = 'mermaid-frame';
    pre.replaceWith(frame);
    const d = { index: i, source: code, ok: true };
    found.push(d);
    try {
      await m.parse(code);
      const { svg } = await m.render(`diagram${k}x${i}`, code);
      frame.innerHTML = svg;
    } catch (e) {
      d.ok = false;
      d.error = String(e && e.message ? e.message : e);
      frame.innerHTML = '<div class="mermaid-error"></div>';
      frame.firstChild.textContent = 'Mermaid could not draw this diagram: ' + d.error;
      continue;
    }
    const svg = frame.querySelector('svg');
    const box = svg.getBoundingClientRect();
    d.width = Math.round(box.width);
    const title = svg.querySelector('.chart-title text, g.chart-title text');
    if (title) {
      const t = title.getBoundingClientRect();
      d.title = title.textContent;
      d.titleClipped = t.left < box.left - 1 || t.right > box.right + 1;
    }
    const labels = [...svg.querySelectorAll('.bottom-axis .label text, g.bottom-axis g.label text')];
    d.xLabels = labels.map((l) => l.textContent);
    d.overlaps = 0;
    // Labels of zero-width spaces are columns left unlabelled.
    const shown = labels.filter((l) => l.textContent.replace(/\u200b/g, '').trim() !== '');
    d.shownLabels = shown.map((l) => l.textContent);
    const rects = shown.map((l) => l.getBoundingClientRect()).sort((a, b) => a.left - b.left);
    for (let j = 1; j < rects.length; j++) {
      if (rects[j].left < rects[j - 1].right - 0.5) d.overlaps++;
    }
    const legend = svg.querySelectorAll('.legend, g.legend');
    d.legend = legend.length;
    // Bars drawn, per bar series: a rect of no height (or a negative one,
    // which is not drawn) does not count.
    d.bars = [...svg.querySelectorAll('g[class^="bar-plot-"]')].map(
      (g) => [...g.querySelectorAll('rect')].filter((r) => parseFloat(r.getAttribute('height')) > 0.5).length);
  }
  return found;
}

const browser = await chromium.launch({
  executablePath: opts.browser,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
});
const results = [];
try {
  const outDir = join(opts.out, `mermaid-${mermaidPkg.version}`);
  mkdirSync(outDir, { recursive: true });
  let md = null; // the page Markdown files are drawn in
  let errors = [];
  for (const [k, file] of opts.files.entries()) {
    const width = widthOf(file);
    let p = md;
    let diagrams = [];
    if (file.endsWith('.txt')) {
      p = await browser.newPage({ viewport: { width, height: 600 }, deviceScaleFactor: 1 });
      await p.setContent(terminal(readFileSync(file, 'utf8'), width));
    } else {
      if (!md) {
        md = p = await browser.newPage({ viewport: { width, height: 600 }, deviceScaleFactor: 1 });
        p.on('pageerror', (e) => errors.push(String(e)));
        await p.setContent(shell());
        await p.addScriptTag({ path: mermaidJS });
      }
      await p.setViewportSize({ width, height: 600 });
      errors = [];
      diagrams = await p.evaluate(drawAll, [marked.parse(readFileSync(file, 'utf8'), { gfm: true }), width, k]);
    }
    const png = join(outDir, basename(file).replace(/\.[^.]+$/, '') + '.png');
    await p.screenshot({ path: png, fullPage: true });
    results.push({ file, mermaid: mermaidPkg.version, width, png, diagrams, pageErrors: errors });
    if (p !== md) await p.close();
  }
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify(results, null, 1) + '\n');
