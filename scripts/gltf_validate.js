// Check .glb / .gltf files with the Khronos glTF-Validator: `node scripts/gltf_validate.js FILE...` prints a JSON
// array, one report per file ({path, numErrors, numWarnings, numInfos, numHints, messages: [{code, severity
// (0 error, 1 warning, 2 info, 3 hint), pointer, message}]}), and exits 1 when a file has an error.
// The validator comes from .venv/node-tools (`make setup`: scripts/ensure_node_tools.sh), or from the
// folder DOPPEL_GLTF_VALIDATOR names.
'use strict';
const fs = require('fs');
const path = require('path');

const moduleDir = process.env.DOPPEL_GLTF_VALIDATOR ||
    path.join(__dirname, '..', '.venv', 'node-tools', 'node_modules', 'gltf-validator');
const validator = require(moduleDir);

function readResource(file) {
    return (uri) => new Promise((resolve, reject) => {
        try {
            resolve(new Uint8Array(fs.readFileSync(path.resolve(path.dirname(file), decodeURIComponent(uri)))));
        } catch (e) {
            reject(e.toString());
        }
    });
}

async function report(file) {
    const data = new Uint8Array(fs.readFileSync(file));
    const r = await validator.validateBytes(data, {maxIssues: 0, externalResourceFunction: readResource(file)});
    const s = r.issues;
    return {path: file, numErrors: s.numErrors, numWarnings: s.numWarnings, numInfos: s.numInfos,
            numHints: s.numHints, messages: s.messages.map((m) => ({code: m.code, severity: m.severity,
                                                                   pointer: m.pointer || '', message: m.message}))};
}

(async () => {
    const reports = [];
    for (const file of process.argv.slice(2)) reports.push(await report(file));
    process.stdout.write(JSON.stringify(reports) + '\n');
    process.exit(reports.some((r) => r.numErrors > 0) ? 1 : 0);
})().catch((e) => {
    process.stderr.write(`gltf_validate: ${e}\n`);
    process.exit(2);
});
