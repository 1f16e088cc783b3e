// `make assets`: bundle the editor and copy htmx, with their versions and licences.
import { build } from "esbuild";
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";

const out = "../smaweb/portal/static/vendor";
mkdirSync(out, { recursive: true });
await build({
  entryPoints: ["editor.js"], bundle: true, minify: true, format: "iife",
  globalName: "SmaEditor", outfile: `${out}/sma-editor.js`, legalComments: "eof",
});
copyFileSync("node_modules/htmx.org/dist/htmx.min.js", `${out}/htmx.min.js`);
const pkgs = ["codemirror", "@codemirror/state", "@codemirror/view", "@codemirror/language",
  "@codemirror/lang-python", "@codemirror/legacy-modes", "htmx.org"];
let notice = "Front-end libraries served by the sma portal (built by `make assets`).\n\n";
for (const name of pkgs) {
  const dir = `node_modules/${name}`;
  const meta = JSON.parse(readFileSync(`${dir}/package.json`, "utf8"));
  let licence = "";
  for (const file of ["LICENSE", "LICENSE.md", "LICENSE.txt"]) {
    try { licence = readFileSync(`${dir}/${file}`, "utf8"); break; } catch {}
  }
  notice += `== ${name} ${meta.version} (${meta.license})\n\n${licence.trim()}\n\n`;
}
writeFileSync(`${out}/LICENSES.txt`, notice);
console.log("built", out);
