// Writes ../ui/vendor/editor.LICENSE.txt: the licence text of every package the
// bundle contains (all of node_modules except the esbuild build tool).
import { readdirSync, readFileSync, writeFileSync, existsSync } from "node:fs";
import { join } from "node:path";

const root = "node_modules";
const dirs = [];
for (const d of readdirSync(root)) {
  if (d.startsWith(".")) continue;
  if (d.startsWith("@")) for (const s of readdirSync(join(root, d))) dirs.push(join(root, d, s));
  else dirs.push(join(root, d));
}
let out = "Third-party software bundled in editor.js (built from resolver/admin/editor by `make vendor-editor`).\n";
for (const dir of dirs.sort()) {
  const pkg = JSON.parse(readFileSync(join(dir, "package.json"), "utf8"));
  if (pkg.name === "esbuild" || pkg.name.startsWith("@esbuild/")) continue;
  const lic = ["LICENSE", "LICENSE.md", "LICENSE.txt", "license"].map((f) => join(dir, f)).find(existsSync);
  out += `\n==== ${pkg.name} ${pkg.version} (${pkg.license}) ====\n\n`;
  out += lic ? readFileSync(lic, "utf8").trim() + "\n" : `License: ${pkg.license} (no licence file in the package)\n`;
}
writeFileSync("../ui/vendor/editor.LICENSE.txt", out);
