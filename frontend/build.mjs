// Builds the dashboard into src/telemetry/server/static/ (committed, shipped in the wheel):
//   app.js     src/main.js and uPlot, bundled and minified (no source map)
//   app.css    src/style.css and uPlot's stylesheet, minified
//   index.html src/index.html with a content hash on the asset URLs (cache busting)
// `node build.mjs --check` builds into a temporary folder and fails when the
// committed files differ from a fresh build (they are stale).

import { createHash } from 'node:crypto';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const here = dirname(fileURLToPath(import.meta.url));
const target = join(here, '..', 'src', 'telemetry', 'server', 'static');
const check = process.argv.includes('--check');
const out = check ? mkdtempSync(join(tmpdir(), 'rimp-dashboard-')) : target;
const FILES = ['app.css', 'app.js', 'index.html'];

const uplot = JSON.parse(readFileSync(join(here, 'node_modules', 'uplot', 'package.json'), 'utf8'));
const banner = `/*! RIMP live dashboard. Bundles uPlot ${uplot.version} (${uplot.license}, (c) Leon Sorokin) */`;

const common = {
  bundle: true,
  minify: true,
  sourcemap: false,
  legalComments: 'eof',
  logLevel: 'warning',
  absWorkingDir: here,
  banner: { js: banner, css: banner },
};

mkdirSync(out, { recursive: true });
await esbuild.build({
  ...common,
  entryPoints: ['src/main.js'],
  outfile: join(out, 'app.js'),
  format: 'iife',
  target: ['es2020', 'chrome100', 'firefox100', 'safari15'],
});
await esbuild.build({
  ...common,
  entryPoints: ['src/style.css'],
  outfile: join(out, 'app.css'),
  target: ['chrome100', 'firefox100', 'safari15'],
});

const hash = createHash('sha256');
for (const name of ['app.js', 'app.css']) hash.update(readFileSync(join(out, name)));
const version = hash.digest('hex').slice(0, 12);
const html = readFileSync(join(here, 'src', 'index.html'), 'utf8').replaceAll('{{version}}', version);
writeFileSync(join(out, 'index.html'), html);

if (check) {
  const stale = FILES.filter((name) => {
    try {
      return !readFileSync(join(out, name)).equals(readFileSync(join(target, name)));
    } catch {
      return true;
    }
  });
  rmSync(out, { recursive: true, force: true });
  if (stale.length) {
    console.error(`stale: ${stale.join(', ')} in ${target}; run: cd frontend && npm ci && npm run build`);
    process.exit(1);
  }
  console.log('static assets are up to date');
} else {
  const extra = readdirSync(out).filter((name) => !FILES.includes(name));
  if (extra.length) console.warn(`note: ${target} also holds ${extra.join(', ')} (not built here)`);
  for (const name of FILES) {
    const size = readFileSync(join(out, name)).length;
    console.log(`${name.padEnd(10)} ${(size / 1024).toFixed(1).padStart(6)} KiB`);
  }
}
