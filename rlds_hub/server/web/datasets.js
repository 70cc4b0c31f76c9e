/* The datasets list and a dataset's page (features, statistics, histograms, the episode
   table with filters, sorting and pages). Uses the helpers of app.js. */
"use strict";

/* ---- the datasets list ------------------------------------------------------------------ */

async function renderList(params, token) {
  const q = params.get("q") || "";
  const offset = Number(params.get("offset") || 0);
  search.value = q;
  setCrumbs("datasets");
  const page = await api("/datasets", { q, limit: PAGE, offset });
  if (token !== renderToken) { return; }
  const rows = page.items.map((d) => el("tr", {
    class: "clickable", "data-dataset": d.name,
    onclick: () => { location.hash = "#/d/" + enc(d.name); },
  },
    el("td", {}, el("a", { href: "#/d/" + enc(d.name) }, d.name)),
    el("td", { class: d.status === "ok" ? "" : "status-" + d.status }, d.status),
    el("td", { class: "num" }, fmt(d.num_episodes)),
    el("td", { class: "num" }, fmt(d.num_steps)),
    el("td", { class: "num" }, bytes(d.size_bytes)),
    el("td", {}, d.env_name || "–"),
    el("td", {}, d.policy || "–"),
    el("td", {}, Object.keys(d.splits).join(", ")),
  ));
  show(
    el("h1", {}, q ? `datasets matching “${q}”` : "datasets"),
    scrolling(el("table", { id: "datasets" },
      el("thead", {}, el("tr", {}, ["name", "status", "episodes", "steps", "size", "env",
        "policy", "splits"].map((h, i) => el("th", { class: i >= 2 && i <= 4 ? "num" : "" }, h)))),
      el("tbody", {}, rows))),
    pager(page, (next) => { location.hash = "#/?" + new URLSearchParams({ q, offset: next }); }),
  );
  if (!page.items.length) { view.append(el("p", { class: "muted" }, "no datasets found")); }
}

/* ---- a dataset --------------------------------------------------------------------------- */

function featureTree(nodes) {
  return el("ul", { class: "tree" }, nodes.map((node) => el("li", {},
    node.children
      ? [el("span", {}, node.name), featureTree(node.children)]
      : [el("span", {}, node.name),
         el("span", { class: "leaf-type" },
            `${node.dtype} [${node.shape.join(", ")}] ${node.encoding}`)])));
}

function statisticsTable(stats) {
  const features = Object.entries((stats && stats.features) || {});
  if (!features.length) { return el("p", { class: "muted" }, "no feature statistics"); }
  return scrolling(el("table", { id: "statistics" },
    el("thead", {}, el("tr", {}, ["feature", "shape", "mean", "std", "min", "max", "non-finite"]
      .map((h) => el("th", {}, h)))),
    el("tbody", {}, features.map(([name, f]) => el("tr", {},
      el("td", {}, name + (f.last_step_excluded ? " *" : "")),
      el("td", {}, "[" + f.shape.join(", ") + "]"),
      el("td", {}, short(f.mean)), el("td", {}, short(f.std)),
      el("td", {}, short(f.min)), el("td", {}, short(f.max)),
      el("td", {}, f.nan_count || f.inf_count ? `${f.nan_count} nan, ${f.inf_count} inf` : ""))))));
}

const FILTERS = ["split", "min_return", "max_return", "min_length", "max_length", "terminated"];

async function renderDataset(name, params, token) {
  setCrumbs(el("a", { href: "#/" }, "datasets"), name);
  const dataset = await api("/datasets/" + enc(name));
  if (token !== renderToken) { return; }
  const splits = Object.keys(dataset.splits);
  const chosenSplit = params.get("split") || (splits.includes("train") ? "train" : splits[0]);
  const stats = dataset.statistics[chosenSplit];
  const returnsCanvas = el("canvas", { class: "plot", id: "returns-histogram" });
  const lengthsCanvas = el("canvas", { class: "plot", id: "lengths-histogram" });
  const provenance = dataset.provenance || {};
  show(
    el("h1", {}, dataset.name, " ",
       dataset.status !== "ok" ? el("span", { class: "status-" + dataset.status },
                                    `(${dataset.status})`) : null),
    dataset.error ? el("div", { class: "error" }, dataset.error) : null,
    el("div", { class: "grid" },
      el("section", { class: "panel" }, el("h2", {}, "dataset"), facts([
        ["path", dataset.path], ["TFDS", `${dataset.tfds_name} ${dataset.version}`],
        ["format", dataset.file_format], ["layout", dataset.layout],
        ["episodes", fmt(dataset.num_episodes)], ["steps", fmt(dataset.num_steps)],
        ["transitions", fmt(dataset.num_transitions)], ["size", bytes(dataset.size_bytes)],
        ["env", provenance.env_name], ["policy", provenance.policy],
        ["created", provenance.created], ["indexed", dataset.indexed_at],
        ["statistics", provenance.statistics], ["checksums", provenance.checksums],
      ])),
      el("section", { class: "panel" }, el("h2", {}, "splits"), el("table", {},
        el("thead", {}, el("tr", {}, ["split", "episodes", "steps", "terminated", "shards",
          "size"].map((h, i) => el("th", { class: i ? "num" : "" }, h)))),
        el("tbody", {}, Object.entries(dataset.splits).map(([s, info]) => el("tr", {},
          el("td", {}, s), el("td", { class: "num" }, fmt(info.episodes)),
          el("td", { class: "num" }, fmt(info.steps)),
          el("td", { class: "num" }, fmt(info.terminated)),
          el("td", { class: "num" }, fmt(info.shards)),
          el("td", { class: "num" }, info.bytes != null ? bytes(info.bytes) : "–")))))),
      el("section", { class: "panel" }, el("h2", {}, "features"),
        el("h3", { class: "muted" }, "steps"), featureTree(dataset.features.steps),
        dataset.features.episode.length ? [el("h3", { class: "muted" }, "episode"),
                                           featureTree(dataset.features.episode)] : null),
    ),
    el("h2", {}, `split ${chosenSplit}: returns and lengths`),
    el("div", { class: "plots" },
      el("div", { class: "panel" }, returnsCanvas), el("div", { class: "panel" }, lengthsCanvas)),
    el("h2", {}, "statistics"),
    el("div", { class: "panel" }, statisticsTable(stats),
       // only where a field leaves it out: in the oxe layout every step is real
       Object.values((stats && stats.features) || {}).some((f) => f.last_step_excluded)
         ? el("p", { class: "muted", id: "statistics-note" },
              "* the zero-filled last step of each episode is excluded") : null),
    el("h2", {}, "episodes"),
    await episodeTable(dataset, params, token),
  );
  currentPlots = [Plots.histogram(returnsCanvas, {
    title: "episode return", edges: stats && stats.returns && stats.returns.histogram.edges,
    counts: stats && stats.returns && stats.returns.histogram.counts,
    empty: stats ? "no finite returns" : "no statistics for this split" }),
  Plots.histogram(lengthsCanvas, {
    title: "episode length (steps)", color: Plots.PALETTE[2],
    edges: stats && stats.lengths && stats.lengths.histogram.edges,
    counts: stats && stats.lengths && stats.lengths.histogram.counts,
    empty: "no statistics for this split" })];
}

async function episodeTable(dataset, params, token) {
  const name = dataset.name;
  const query = {};
  for (const key of FILTERS) { if (params.get(key)) { query[key] = params.get(key); } }
  const meta = params.getAll("meta");
  const orderBy = params.get("order_by") || "index";
  const offset = Number(params.get("offset") || 0);
  let page = null, failure = null;
  try {
    page = await api(`/datasets/${enc(name)}/episodes`,
                     { ...query, meta, order_by: orderBy, limit: PAGE, offset });
  } catch (error) {
    failure = error;  // a filter the API refused: shown under the form, to be corrected
  }
  const go = (changes) => {
    const next = new URLSearchParams(params);
    for (const [key, value] of Object.entries(changes)) {
      next.delete(key);
      for (const item of Array.isArray(value) ? value : [value]) {
        if (item !== "" && item !== null && item !== undefined) { next.append(key, item); }
      }
    }
    location.hash = "#/d/" + enc(name) + "?" + next;
  };
  const input = (key, label, type = "number") => el("label", {}, label,
    el("input", { name: key, type, step: "any", value: params.get(key) || "" }));
  const form = el("form", { class: "filters", id: "episode-filters", onsubmit: (event) => {
    event.preventDefault();
    const data = new FormData(event.target);
    const changes = { offset: "" };
    for (const key of FILTERS) { changes[key] = data.get(key) || ""; }
    changes.meta = String(data.get("meta") || "").split(";").map((s) => s.trim())
      .filter(Boolean);
    go(changes);
  } },
    el("label", {}, "split", el("select", { name: "split" },
      el("option", { value: "" }, "all"),
      Object.keys(dataset.splits).map((s) => el("option", { value: s,
                                                           selected: params.get("split") === s }, s)))),
    input("min_return", "min return"), input("max_return", "max return"),
    input("min_length", "min length"), input("max_length", "max length"),
    el("label", {}, "terminated", el("select", { name: "terminated" },
      el("option", { value: "" }, "any"),
      el("option", { value: "true", selected: params.get("terminated") === "true" }, "yes"),
      el("option", { value: "false", selected: params.get("terminated") === "false" }, "no"))),
    Object.keys(dataset.episode_fields).length
      ? el("label", {}, "metadata (" + Object.keys(dataset.episode_fields).join(", ") + ")",
           el("input", { name: "meta", class: "wide", value: meta.join("; "),
                         placeholder: "success=true; episode_id>=3" }))
      : null,
    el("button", { type: "submit" }, "filter"),
    el("button", { type: "button", onclick: () => {
      location.hash = "#/d/" + enc(name); } }, "clear"));
  const sortable = (label, key) => {
    const active = orderBy.replace("-", "") === key;
    const arrow = active ? (orderBy.startsWith("-") ? " ▼" : " ▲") : "";
    return el("th", { class: "sortable num", "data-sort": key, onclick: () => go({
      order_by: active && !orderBy.startsWith("-") ? "-" + key : key, offset: "" }) },
      label + arrow);
  };
  const metaKeys = Object.keys(dataset.episode_fields);
  if (failure) {
    return el("div", { class: "panel" }, form,
      el("div", { class: "error", id: "episodes-error" }, failure.message));
  }
  const rows = page.items.map((e) => el("tr", {
    class: "clickable", "data-episode": `${e.split}/${e.index}`,
    onclick: () => { location.hash = `#/d/${enc(name)}/e/${enc(e.split)}/${e.index}`; },
  },
    el("td", {}, e.split), el("td", { class: "num" }, String(e.index)),
    el("td", { class: "num" }, fmt(e.length)), el("td", { class: "num" }, fmt(e.return)),
    el("td", {}, e.is_terminal ? "terminated" : "truncated"),
    metaKeys.map((k) => el("td", {}, e.metadata && k in e.metadata ? fmt(e.metadata[k]) : "–"))));
  return el("div", { class: "panel" }, form,
    scrolling(el("table", { id: "episodes" },
      el("thead", {}, el("tr", {}, el("th", {}, "split"), sortable("episode", "index"),
        sortable("length", "length"), sortable("return", "return"), el("th", {}, "end"),
        metaKeys.map((k) => el("th", {}, k)))),
      el("tbody", {}, rows))),
    pager(page, (next) => go({ offset: next })));
}

