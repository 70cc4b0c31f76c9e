/* An episode's page: plots over time synchronised with the image frames (scrubber, play,
   click a plot to pick a step, arrow keys), the text fields of the step (the language
   instruction) and depth maps drawn as pictures. Uses the helpers of app.js. */
"use strict";

const MIN_MAP_SIDE = 8;  // a 2-D (or H x W x 1) numeric field at least this wide is a map
const ZERO_FILLED = /^(action|reward|discount)(\/|$)/;  // the rlds layout's filler fields

/* ---- an episode ------------------------------------------------------------------------- */

async function loadSteps(name, split, index, length, wanted) {
  const fields = {};
  for (let start = 0; start < length || start === 0; ) {
    const slice = await api(`/datasets/${enc(name)}/episodes/${index}/steps`,
                            { split, start, stop: Math.min(length, start + 1000), fields: wanted });
    for (const [key, values] of Object.entries(slice.fields)) {
      fields[key] = (fields[key] || []).concat(values);
    }
    if (slice.stop >= length || slice.stop <= start) { return { fields, slice }; }
    start = slice.stop;
  }
  return { fields, slice: null };
}

/* A depth map (or any single-channel picture stored as numbers): [H, W] or [H, W, 1]
   (what the frames endpoint draws as a picture: rlds_hub/server/reading/maps.py). */
function isMap(leaf) {
  const shape = leaf.shape || [];
  return !leaf.image && /^(u?int|float)\d+$/.test(leaf.dtype || "") && (shape.length === 2 ||
    (shape.length === 3 && shape[2] === 1)) && Math.min(shape[0], shape[1]) >= MIN_MAP_SIDE;
}

/* In the rlds layout the last step's action, reward and discount are zero-filled filler
   (not data); other fields (step metadata, Minari's infos) are shown on the last step
   unless it is zero-filled there too, as rlds_hub's recorder does with step metadata. */
function blankFiller(fields, layout) {
  if (layout !== "rlds") { return; }
  for (const [key, values] of Object.entries(fields)) {
    if (!values.length || key.startsWith("observation") ||
        /^is_(first|last|terminal)$/.test(key)) { continue; }
    const last = values[values.length - 1];
    const flat = Array.isArray(last) ? last.flat(Infinity) : [last];
    if (ZERO_FILLED.test(key) || flat.every((v) => v === 0 || v === "" || v === false)) {
      fields[key] = values.slice(0, -1).concat([null]);
    }
  }
}

function textOf(value) {
  if (value === null || value === undefined) { return "–"; }
  return Array.isArray(value) ? value.flat(Infinity).join(" | ") : String(value);
}

/* A depth map, drawn by the server as a picture (viridis over the episode's range, so that
   steps compare; black where not finite), one step at a time. */
function depthMap(name, split, index, key) {
  const image = el("img", { class: "depth-map", "data-field": key, alt: `${key} (depth map)` });
  function draw(step) {
    image.src = `${API}/datasets/${enc(name)}/episodes/${index}/frames/${step}?` +
      new URLSearchParams({ split, field: key });
    image.dataset.step = String(step);
  }
  const panel = el("section", { class: "panel" }, el("h3", {}, key), image,
    el("p", { class: "muted" }, "low values dark, high yellow (over the episode); black: not finite"));
  return { key, panel, draw };
}

/* The step leaves of a dataset's feature tree: [{key, dtype, shape, image}]. */
function leavesOf(nodes) {
  return nodes.flatMap((node) => (node.children ? leavesOf(node.children) : [node]));
}

function seriesOf(values, shape) {
  const columns = shape.reduce((a, b) => a * b, 1);
  if (!shape.length) { return [{ name: "", values: values.map(num) }]; }
  const flat = values.map((v) => (Array.isArray(v) ? v.flat(Infinity) : [v]));
  const out = [];
  for (let c = 0; c < Math.min(columns, MAX_SERIES); c++) {
    out.push({ name: `[${c}]`, values: flat.map((row) => num(row[c])) });
  }
  return out;
}

async function renderEpisode(name, split, index, token) {
  setCrumbs(el("a", { href: "#/" }, "datasets"), el("a", { href: "#/d/" + enc(name) }, name),
            `${split} episode ${index}`);
  const [episode, dataset] = await Promise.all([
    api(`/datasets/${enc(name)}/episodes/${index}`, { split }), api(`/datasets/${enc(name)}`)]);
  const mapKeys = leavesOf(dataset.features.steps).filter(isMap).map((leaf) => leaf.key);
  // Frames and depth maps come as pictures, not as numbers in JSON.
  const wanted = episode.step_fields.filter((key) => !episode.image_fields.includes(key) &&
    !mapKeys.includes(key)).join(",");
  const { fields, slice } = await loadSteps(name, split, index, episode.length,
                                            wanted.length <= 4000 ? wanted : undefined);
  if (token !== renderToken) { return; }
  const dtypes = slice ? slice.dtypes : {};
  const shapes = slice ? slice.shapes : {};
  blankFiller(fields, episode.layout);
  const keys = Object.keys(fields).sort((a, b) => order(a) - order(b) || a.localeCompare(b));
  const maps = mapKeys.map((key) => depthMap(name, split, index, key));
  const mapped = new Set(mapKeys);
  const plotted = keys.filter((key) => {
    const dtype = dtypes[key];
    return dtype && dtype !== "string" && dtype !== "bool" && !mapped.has(key) &&
      !/^(is_first|is_last|is_terminal)$/.test(key);
  });
  const texts = keys.filter((key) => dtypes[key] === "string");
  const textValues = Object.fromEntries(texts.map((key) => [key, el("dd", { "data-field": key })]));
  const plots = [];
  currentPlots = plots;
  let step = 0;
  const readout = el("span", { id: "step-readout" });
  const scrubber = el("input", { type: "range", id: "scrubber", min: 0,
                                 max: Math.max(0, episode.length - 1), value: 0 });
  const fieldSelect = el("select", { id: "frame-field" },
    episode.image_fields.map((f) => el("option", { value: f }, f)));
  const frame = el("img", { id: "frame", alt: "image observation" });
  let playing = null;
  const play = el("button", { id: "play", onclick: () => {
    if (playing) { clearInterval(playing); playing = null; play.textContent = "play"; return; }
    play.textContent = "pause";
    playing = setInterval(() => {
      if (token !== renderToken) { clearInterval(playing); return; }
      setStep(step + 1 >= episode.length ? 0 : step + 1);
    }, 100);
  } }, "play");

  function setStep(next) {
    step = Math.max(0, Math.min(episode.length - 1, next));
    scrubber.value = String(step);
    const values = plotted.slice(0, 3).map((key) => `${key} ${short(fields[key][step])}`);
    readout.textContent = `step ${step} / ${episode.length - 1}` +
      (values.length ? " · " + values.join(" · ") : "");
    for (const plot of plots) { plot.setCursor(step); }
    for (const map of maps) { map.draw(step); }
    for (const key of texts) { textValues[key].textContent = textOf(fields[key][step]); }
    if (episode.image_fields.length) {
      frame.src = `${API}/datasets/${enc(name)}/episodes/${index}/frames/${step}?` +
        new URLSearchParams({ split, field: fieldSelect.value });
      frame.dataset.step = String(step);
    }
  }
  scrubber.addEventListener("input", () => setStep(Number(scrubber.value)));
  fieldSelect.addEventListener("change", () => setStep(step));
  document.onkeydown = (event) => {
    if (token !== renderToken || event.target.tagName === "INPUT") { return; }
    if (event.key === "ArrowRight") { setStep(step + 1); }
    if (event.key === "ArrowLeft") { setStep(step - 1); }
  };
  const canvases = plotted.map((key) => el("canvas", { class: "plot", "data-field": key }));
  show(
    el("h1", {}, `${name} · ${split} episode ${index}`),
    el("div", { class: "grid" },
      el("section", { class: "panel" }, el("h2", {}, "episode"), facts([
        ["steps", fmt(episode.length)], ["transitions", fmt(episode.num_transitions)],
        ["return", fmt(episode.return)],
        ["end", episode.is_terminal ? "terminated" : "truncated"],
        ...Object.entries(episode.metadata || {}).map(([k, v]) => [k, fmt(v)]),
      ])),
      el("section", { class: "panel frame-box" }, el("h2", {}, "frames"),
        episode.image_fields.length ? [fieldSelect, frame] :
          el("p", { class: "muted" }, "this dataset has no image observations"),
        el("div", { class: "scrubber" }, play, scrubber), readout),
      texts.length ? el("section", { class: "panel", id: "step-text" }, el("h2", {}, "text"),
        el("dl", { class: "facts step-text" },
           texts.flatMap((key) => [el("dt", {}, key), textValues[key]]))) : null),
    maps.length ? [el("h2", {}, "maps"), el("div", { class: "maps" }, maps.map((m) => m.panel))]
      : null,
    el("h2", {}, "over time (click a plot to pick a step)"),
    el("div", { class: "plots" }, canvases.map((c) => el("div", { class: "panel" }, c))),
    plotted.length ? null : el("p", { class: "muted" }, "no numeric step fields to plot"),
  );
  canvases.forEach((canvas, i) => {
    const key = plotted[i];
    const shape = shapes[key] || [];
    const size = shape.reduce((a, b) => a * b, 1);
    plots.push(Plots.line(canvas, {
      title: key + (size > MAX_SERIES ? ` (first ${MAX_SERIES} of ${size})` : ""),
      series: seriesOf(fields[key], shape), cursor: 0, onPick: setStep }));
  });
  setStep(0);
}

function order(key) {
  if (key === "reward") { return 0; }
  if (key.startsWith("action")) { return 1; }
  if (key.startsWith("observation")) { return 2; }
  return 3;
}

