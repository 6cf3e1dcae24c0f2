// Runs an exported model through @magenta/sketch (es5 entry, tfjs CPU backend) for tests.
//
// usage: NODE_PATH=<dir holding node_modules/@magenta/sketch> node magenta_pdf.js IN.json OUT.json
// IN.json: {"url": model URL, "strokes": [[dx, dy, p1, p2, p3], ...] in the library's
//           pixel units (data units / pixelFactor), "temperature": t,
//           "softmax_temperature": s, "sample_steps": n}
// OUT.json: {"pdfs": [{pi, muX, muY, sigmaX, sigmaY, corr, pen} after each stroke],
//            "sample": [[dx, dy, p1, p2, p3], ...], "scale_factor": s, "num_units": u}
// The state starts as the README ("Drawing in the browser") tells a page to: info.initial_state if present, else zeros.
'use strict';
const fs = require('fs');
const tf = require('@tensorflow/tfjs');
const ms = require('@magenta/sketch');

const FIELDS = ['pi', 'muX', 'muY', 'sigmaX', 'sigmaY', 'corr', 'pen'];
const SIZES = {pi: 20, muX: 20, muY: 20, sigmaX: 20, sigmaY: 20, corr: 20, pen: 3};

function plainPdf(pdf) {
  // getPDF's sigmaY is a longer slice in 0.2.0; its first 20 values are sigma_y
  const out = {};
  for (const k of FIELDS) out[k] = Array.from(pdf[k].slice(0, SIZES[k]));
  return out;
}

function startState(model) {
  const s0 = model.info.initial_state;  // absent for decoder-only models
  return s0 ? {h: Float32Array.from(s0.h), c: Float32Array.from(s0.c)} : model.zeroState();
}

async function main() {
  const [inPath, outPath] = process.argv.slice(2);
  const job = JSON.parse(fs.readFileSync(inPath, 'utf8'));
  await tf.setBackend('cpu');
  const model = new ms.SketchRNN(job.url);
  await model.initialize();
  let state = startState(model);
  const pdfs = [];
  for (const stroke of job.strokes) {
    state = model.update(stroke, state);
    pdfs.push(plainPdf(model.getPDF(state, job.temperature, job.softmax_temperature)));
  }
  // one sketch, the library's own sampling loop: S_0, then sample until p3 or n steps
  state = startState(model);
  let stroke = model.zeroInput();
  const sample = [];
  for (let i = 0; i < job.sample_steps; i++) {
    state = model.update(stroke, state);
    stroke = model.sample(model.getPDF(state, job.temperature));
    sample.push(stroke);
    if (stroke[4] === 1) break;
  }
  fs.writeFileSync(outPath, JSON.stringify({
    pdfs, sample, scale_factor: model.scaleFactor, num_units: model.numUnits,
    backend: tf.getBackend()}));
  model.dispose();
}

main().catch((e) => { console.error(e && e.stack || e); process.exit(1); });
