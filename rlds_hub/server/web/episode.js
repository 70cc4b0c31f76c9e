/* An episode's page: plots over time synchronised with the image frames (scrubber, play,
   click a plot to pick a step, arrow keys), the text fields of the step (the language
   instruction) and depth maps drawn as pictures. Uses the helpers of app.js. */
"use strict";

const MIN_MAP_SIDE = 8;  // a 2-D (or H x W x 1) numeric field at least this wide is a map
const ZERO_FILLED = /^(action|reward|discount)(\/|$)/;  // the rlds layout's filler fields

/* ---- an episode ------------------------------------------------------------------------- */

async function loadSteps(name, split, index, length) {
  const fields = {};
  for (let start = 0; start < length || start === 0; ) {
    const slice = await api(`/datasets/${enc(name)}/episodes/${index}/steps`,
                            { split, start, stop: Math.min(length, start + 1000) });
    for (const [key, values] of Object.entries(slice.fields)) {
      fields[key] = (fields[key] || []).concat(values);
    }
    if (slice.stop >= length || slice.stop <= start) { return { fields, slice }; }
    start = slice.stop;
  }
  return { fields, slice: null };
}

/* A depth map (or any single-channel picture stored as numbers): [H, W] or [H, W, 1]. */
function isMap(dtype, shape) {
  return dtype !== "string" && dtype !== "bool" && (shape.length === 2 ||
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

/* Viridis, from dark blue (near) to yellow (far); 256 entries of [r, g, b]. */
const VIRIDIS = (() => {
  const anchors = [[68, 1, 84], [72, 40, 120], [62, 74, 137], [49, 104, 142], [38, 130, 142],
                   [31, 158, 137], [53, 183, 121], [109, 205, 89], [180, 222, 44],
                   [253, 231, 37]];
  const table = [];
  for (let i = 0; i < 256; i++) {
    const x = (i / 255) * (anchors.length - 1), k = Math.min(Math.floor(x), anchors.length - 2);
    const f = x - k;
    table.push(anchors[k].map((c, j) => Math.round(c + f * (anchors[k + 1][j] - c))));
  }
  return table;
})();

/* A map field drawn step by step on a canvas of its own size, coloured over the range of
   the whole episode (so that steps compare); values that are not finite are black. */
function depthMap(key, values, shape) {
  const [height, width] = shape;
  const canvas = el("canvas", { class: "depth-map", "data-field": key, width, height });
  let low = Infinity, high = -Infinity;
  for (const frame of values) {
    if (frame === null) { continue; }
    for (const v of frame.flat(Infinity)) {
      const x = num(v);
      if (Number.isFinite(x)) { if (x < low) { low = x; } if (x > high) { high = x; } }
    }
  }
  const caption = el("p", { class: "muted" }, low <= high
    ? `colour: ${fmt(low)} (dark) to ${fmt(high)} (yellow) over the episode; black: not finite`
    : "no finite values");
  const ctx = canvas.getContext("2d");
  const image = ctx.createImageData(width, height);
  function draw(step) {
    const frame = values[step];
    const flat = frame === null || frame === undefined ? [] : frame.flat(Infinity);
    for (let i = 0; i < width * height; i++) {
      const x = num(flat[i]);
      const rgb = Number.isFinite(x)
        ? VIRIDIS[high > low ? Math.round(((x - low) / (high - low)) * 255) : 128] : [0, 0, 0];
      image.data.set([rgb[0], rgb[1], rgb[2], 255], i * 4);
    }
    ctx.putImageData(image, 0, 0);
  }
  const panel = el("section", { class: "panel" }, el("h3", {}, key), canvas, caption);
  return { key, panel, draw };
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
  const episode = await api(`/datasets/${enc(name)}/episodes/${index}`, { split });
  const { fields, slice } = await loadSteps(name, split, index, episode.length);
  if (token !== renderToken) { return; }
  const dtypes = slice ? slice.dtypes : {};
  const shapes = slice ? slice.shapes : {};
  blankFiller(fields, episode.layout);
  const keys = Object.keys(fields).sort((a, b) => order(a) - order(b) || a.localeCompare(b));
  const maps = keys.filter((key) => dtypes[key] && isMap(dtypes[key], shapes[key] || []))
    .map((key) => depthMap(key, fields[key], shapes[key]));
  const mapped = new Set(maps.map((m) => m.key));
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

