// Bundles the console into dist/ (embedded in vigil-vault at build time; see vault/http/src/console.rs).
// Deterministic: the same sources and lockfile give the same bytes, so CI can check that the
// committed dist/ is the build of the committed sources.
import { build } from "esbuild";
import { copyFileSync, mkdirSync } from "node:fs";

mkdirSync("dist", { recursive: true });
await build({
  entryPoints: ["src/main.tsx"],
  bundle: true,
  minify: true,
  format: "esm",
  target: ["chrome120", "firefox120", "safari17"],
  outfile: "dist/app.js",
  jsx: "automatic",
  jsxImportSource: "preact",
  legalComments: "eof",
  logLevel: "warning",
});
copyFileSync("src/index.html", "dist/index.html");
copyFileSync("src/app.css", "dist/app.css");
