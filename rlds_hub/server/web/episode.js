/* An episode's page: plots over time synchronised with the image frames (scrubber, play,
   click a plot to pick a step, arrow keys). Uses the helpers of app.js. */
"use strict";

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
  if (episode.layout === "rlds" && episode.length > 0) {
    // The last step's action, reward, discount and step metadata are zero-filled filler.
    for (const key of Object.keys(fields)) {
      if (!key.startsWith("observation") && !/^is_(first|last|terminal)$/.test(key)) {
        fields[key] = fields[key].slice(0, -1).concat([null]);
      }
    }
  }
  const plotted = Object.keys(fields).filter((key) => {
    const dtype = dtypes[key];
    return dtype && dtype !== "string" && dtype !== "bool" && !/^(is_first|is_last|is_terminal)$/
      .test(key);
  }).sort((a, b) => order(a) - order(b) || a.localeCompare(b));
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
        el("div", { class: "scrubber" }, play, scrubber), readout)),
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

