// Builds web/dist: bundles src/main.tsx with esbuild (code-split ES
// modules, minified, content-hashed names), writes index.html pointing at
// them, precompresses every asset (.gz and .br beside it) and checks the
// initial load against the size budget. Usage: node build.mjs [--dev]
import * as esbuild from "esbuild";
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync, copyFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { brotliCompressSync, constants, gzipSync } from "node:zlib";

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, "dist");
const dev = process.argv.includes("--dev");
const BUDGET = 250 * 1024; // initial load, compressed (gzip)

rmSync(out, { recursive: true, force: true });
mkdirSync(join(out, "assets"), { recursive: true });

const result = await esbuild.build({
  entryPoints: { app: join(here, "src/main.tsx"), style: join(here, "src/styles.css") },
  bundle: true,
  splitting: true,
  format: "esm",
  target: ["es2020", "chrome100", "firefox100", "safari15"],
  outdir: join(out, "assets"),
  entryNames: "[name]-[hash]",
  chunkNames: "[name]-[hash]",
  assetNames: "[name]-[hash]",
  minify: !dev,
  sourcemap: dev ? "inline" : false,
  metafile: true,
  jsx: "automatic",
  jsxImportSource: "preact",
  legalComments: "none",
  define: { "process.env.NODE_ENV": dev ? '"development"' : '"production"' },
  logLevel: "warning",
});

const outputs = result.metafile.outputs;
let js = "", css = "";
for (const [file, o] of Object.entries(outputs)) {
  if (o.entryPoint && o.entryPoint.endsWith("main.tsx")) js = "/" + relative(out, join(here, file)).replaceAll("\\", "/");
  if (file.endsWith(".css") && o.entryPoint && o.entryPoint.endsWith("styles.css")) css = "/" + relative(out, join(here, file)).replaceAll("\\", "/");
}
// esbuild emits a tiny JS stub for a CSS entry point: not needed.
for (const [file, o] of Object.entries(outputs)) {
  if (o.entryPoint && o.entryPoint.endsWith("styles.css") && file.endsWith(".js")) rmSync(join(here, file), { force: true });
}
if (!js || !css) throw new Error("build: entry outputs not found");

const html = readFileSync(join(here, "index.html"), "utf8").replace("{{js}}", js).replace("{{css}}", css);
writeFileSync(join(out, "index.html"), html);
copyFileSync(join(here, "favicon.svg"), join(out, "favicon.svg"));

// Precompress everything worth it.
const sizes = new Map();
function walk(dir) {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p);
    else if (/\.(js|css|html|svg|json|map)$/.test(name)) {
      const raw = readFileSync(p);
      const gz = gzipSync(raw, { level: 9 });
      const br = brotliCompressSync(raw, { params: { [constants.BROTLI_PARAM_QUALITY]: 11, [constants.BROTLI_PARAM_SIZE_HINT]: raw.length } });
      if (gz.length < raw.length) writeFileSync(p + ".gz", gz);
      if (br.length < raw.length) writeFileSync(p + ".br", br);
      sizes.set("/" + relative(out, p).replaceAll("\\", "/"), { raw: raw.length, gz: Math.min(gz.length, raw.length), br: Math.min(br.length, raw.length) });
    }
  }
}
walk(out);

// The initial load: index.html, the entry script and what it imports
// statically, the stylesheet. Lazy chunks (charts) come later.
const initial = new Set(["/index.html", css, js]);
function statics(file) {
  const o = outputs[relative(here, join(out, file.slice(1))).replaceAll("\\", "/")];
  for (const imp of o?.imports || []) {
    if (imp.kind !== "import-statement") continue;
    const f = "/" + relative(out, join(here, imp.path)).replaceAll("\\", "/");
    if (!initial.has(f)) {
      initial.add(f);
      statics(f);
    }
  }
}
statics(js);
let total = { raw: 0, gz: 0, br: 0 };
const lines = [];
for (const [f, s] of [...sizes].sort()) {
  if (f.endsWith(".html") && f !== "/index.html") continue;
  const tag = initial.has(f) ? "initial" : "lazy";
  lines.push(`  ${f.padEnd(34)} ${String(s.raw).padStart(8)} B  gzip ${String(s.gz).padStart(7)} B  br ${String(s.br).padStart(7)} B  ${tag}`);
  if (initial.has(f)) for (const k of ["raw", "gz", "br"]) total[k] += s[k];
}
const kb = (n) => (n / 1024).toFixed(1) + " KB";
console.log("web: built web/dist\n" + lines.join("\n"));
console.log(`web: initial load ${kb(total.raw)} raw, ${kb(total.gz)} gzip, ${kb(total.br)} brotli (budget ${kb(BUDGET)} compressed)`);
const digest = createHash("sha256").update(html).digest("hex").slice(0, 12);
writeFileSync(join(out, "build.json"), JSON.stringify({ initial_gzip: total.gz, initial_brotli: total.br, initial_raw: total.raw, index: digest }, null, 1) + "\n");
if (total.gz > BUDGET) {
  console.error(`web: initial load ${kb(total.gz)} gzip is over the ${kb(BUDGET)} budget`);
  process.exit(1);
}
