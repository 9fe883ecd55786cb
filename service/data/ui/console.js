// The medserve console: plain JavaScript against the gateway's /v1 API (no build step, no CDN).
// The API key typed at the top is kept in sessionStorage and sent as `Authorization: Bearer`.
"use strict";

const $ = (selector) => document.querySelector(selector);
const KEY_STORE = "medserve-api-key";
const keyField = $("#api-key");
keyField.value = sessionStorage.getItem(KEY_STORE) || "";

function authHeaders(extra = {}) {
  const key = keyField.value.trim();
  return key ? { ...extra, Authorization: `Bearer ${key}` } : extra;
}

// fetch() with the key; an error status becomes an Error carrying the gateway's message.
async function api(path, options = {}) {
  const response = await fetch(path, { ...options, headers: authHeaders(options.headers) });
  if (!response.ok) {
    let message = `${response.status}`;
    try {
      const body = await response.json();
      message += `: ${body.error?.message ?? body.error ?? ""}`;
    } catch (_) { /* not JSON */ }
    if (response.status === 401) message += " (type an API key at the top)";
    throw new Error(message);
  }
  return response;
}

const postJSON = (path, body) =>
  api(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });

function say(id, text, error = false) {
  const element = $(`#${id}-message`);
  element.textContent = text;
  element.classList.toggle("error", error);
}

// Run `work` with the form's button disabled; errors are shown next to the form.
async function busy(form, id, what, work) {
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  say(id, what);
  const started = performance.now();
  try {
    await work();
    say(id, `done in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  } catch (error) {
    say(id, error.message, true);
  } finally {
    button.disabled = false;
  }
}

function element(tag, props = {}, ...children) {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children);
  return node;
}

function definitions(target, entries) {
  target.replaceChildren();
  for (const [key, value] of entries) {
    if (value === undefined || value === null || value === "") continue;
    const text = typeof value === "object" ? JSON.stringify(value) : String(value);
    target.append(element("dt", { textContent: key }), element("dd", { textContent: text }));
  }
}

const dataURL = (file) => `data:${file.media_type};base64,${file.data_base64}`;

function fields(form) {
  const out = {};
  for (const [key, value] of new FormData(form)) {
    if (typeof value === "string" && value.trim() !== "") out[key] = value.trim();
  }
  return out;
}

// --- tabs, choices, status -------------------------------------------------------------------

for (const button of document.querySelectorAll("nav button")) {
  button.addEventListener("click", () => {
    for (const other of document.querySelectorAll("nav button")) other.classList.toggle("active", other === button);
    for (const tab of document.querySelectorAll(".tab")) tab.hidden = tab.id !== button.dataset.tab;
    if (button.dataset.tab === "jobs") listJobs();
  });
}

function fill(select, values) {
  for (const value of values) select.append(element("option", { value, textContent: value }));
}

async function loadChoices() {
  const config = await (await fetch("/ui/config.json")).json();
  for (const select of document.querySelectorAll("select[data-choices]")) fill(select, config[select.dataset.choices]);
}

async function refreshStatus() {
  sessionStorage.setItem(KEY_STORE, keyField.value.trim());
  try {
    const { models } = await (await api("/v1/models")).json();
    for (const select of document.querySelectorAll("select[data-family]")) {
      const chosen = models.filter((m) => m.family === select.dataset.family
        && (!select.dataset.dims || String(m.input?.dims) === select.dataset.dims));
      select.replaceChildren();
      fill(select, chosen.map((m) => m.name));
    }
    const ready = models.filter((m) => m.ready).length;
    $("#status").textContent = `${ready}/${models.length} models ready`;
  } catch (error) {
    $("#status").textContent = error.message;
  }
}
keyField.addEventListener("change", refreshStatus);

// --- generate --------------------------------------------------------------------------------

$("#generate-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const form = event.target;
  const { size, ...values } = fields(form);
  const body = { ...values, output: "png" };
  for (const key of ["age", "n", "seed", "steps"]) if (key in body) body[key] = Number(body[key]);
  body.height = body.width = Number(size);
  busy(form, "generate", `generating ${body.n || 1} image(s)...`, async () => {
    const result = await (await postJSON("/v1/roentgen/generate", body)).json();
    $("#generate-grid").replaceChildren(...result.images.map((image) => element("figure", {},
      element("img", { src: dataURL(image), alt: `synthetic image ${image.index}`, className: "generated" }),
      element("figcaption", {}, element("span", { className: "synthetic", textContent: "SYNTHETIC" }),
        ` #${image.index}, seed ${image.seed}`))));
    const p = result.provenance;
    definitions($("#generate-provenance"), [["prompt", result.prompt], ["model", `${result.model} ${result.version}`],
      ["weights", result.weights], ["weights digest", result.weights_digest], ["seeds", p.seeds],
      ["steps", p.steps], ["guidance", p.guidance_scale], ["scheduler", p.scheduler],
      ["size", `${p.width}x${p.height}`], ["device", `${p.device} ${p.dtype}`]]);
  });
});

// --- encode / decode -------------------------------------------------------------------------

$("#medvae-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const form = event.target;
  const file = form.elements.file.files[0];
  const model = form.elements.model.value;
  busy(form, "medvae", "encoding and decoding...", async () => {
    const upload = new FormData();
    upload.append("model", model);
    upload.append("file", file);
    const latent = await (await api("/v1/medvae/encode", { method: "POST", body: upload })).json();
    const recon = await (await postJSON("/v1/medvae/decode", { model, latent_base64: latent.data_base64 })).json();
    $("#medvae-original").src = URL.createObjectURL(file);
    $("#medvae-recon").src = dataURL(recon);
    definitions($("#medvae-details"), [["model", `${latent.model} ${latent.version}`], ["weights", latent.weights],
      ["weights digest", latent.weights_digest], ["input shape", latent.input_shape],
      ["latent shape", latent.shape], ["downsampling", `${latent.factor}x per side`],
      ["reconstruction", `${recon.shape} (${recon.synthetic ? "synthetic" : ""})`]]);
  });
});

// --- MedVAL ----------------------------------------------------------------------------------

$("#medval-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const form = event.target;
  const body = fields(form);
  body.max_tokens = Number(body.max_tokens);
  busy(form, "medval", "grading...", async () => {
    const grade = await (await postJSON("/v1/medval/evaluate", body)).json();
    const errors = grade.errors.map((e) => element("li", { textContent: `${e.category ?? "unclassified"}: ${e.text}` }));
    const provenance = element("dl", { className: "provenance" });
    definitions(provenance, [["machine-generated", grade.machine_generated], ["model", grade.model],
      ["engine", grade.engine], ["weights", grade.weights], ["weights digest", grade.weights_digest],
      ["constrained decoding", grade.constrained]]);
    $("#medval-result").replaceChildren(
      element("p", {}, element("span", { className: `risk risk-${grade.risk_level}`,
        textContent: `${grade.risk_level} ${grade.risk_label}` })),
      element("ul", {}, ...errors), element("p", { textContent: grade.reasoning }), provenance);
  });
});

// --- jobs ------------------------------------------------------------------------------------

let following = null; // the AbortController of the event stream being followed

async function listJobs() {
  try {
    const { jobs } = await (await api("/v1/jobs?limit=20")).json();
    $("#jobs-table tbody").replaceChildren(...jobs.map((job) => {
      const row = element("tr", {}, element("td", {}, element("code", { textContent: job.id })),
        element("td", { textContent: job.type }), element("td", { textContent: job.state }),
        element("td", { textContent: `${job.progress.done}/${job.progress.total}` }));
      row.addEventListener("click", () => follow(job.id));
      return row;
    }));
  } catch (error) {
    say("jobs", error.message, true);
  }
}
$("#jobs-refresh").addEventListener("click", listJobs);

$("#job-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const form = event.target;
  busy(form, "jobs", "submitting...", async () => {
    const job = await (await postJSON("/v1/jobs", { type: form.elements.type.value,
      params: JSON.parse(form.elements.params.value || "{}") })).json();
    await listJobs();
    follow(job.id);
  });
});

function showJob(job) {
  const p = job.progress;
  $("#job-progress").max = p.total || 1;
  $("#job-progress").value = p.done;
  const detail = Object.entries(p.detail || {}).map(([k, v]) => `${k} ${v}`).join(", ");
  $("#job-state").textContent = `${job.state}: ${p.done}/${p.total} items, ${p.rate_per_s.toFixed(2)}/s`
    + (detail ? `; ${detail}` : "") + (job.error ? `; ${job.error}` : "");
}

// Follow a job's server-sent events with fetch (EventSource cannot send the API key).
async function follow(id) {
  if (following) following.abort();
  following = new AbortController();
  $("#job-view").hidden = false;
  $("#job-id").textContent = id;
  $("#job-artifacts").replaceChildren();
  try {
    const response = await api(`/v1/jobs/${id}/events`, { signal: following.signal });
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        const event = /^event: (.*)$/m.exec(block)?.[1];
        const data = /^data: (.*)$/m.exec(block)?.[1];
        if (event === "progress" && data) showJob(JSON.parse(data));
        if (event === "end") await listArtifacts(id);
      }
    }
  } catch (error) {
    if (error.name !== "AbortError") say("jobs", error.message, true);
  }
}

async function listArtifacts(id) {
  const { artifacts } = await (await api(`/v1/jobs/${id}/artifacts`)).json();
  $("#job-artifacts").replaceChildren(...artifacts.map((artifact) => {
    const link = element("a", { href: "#", textContent: `${artifact.path} (${artifact.size} bytes)` });
    link.addEventListener("click", async (event) => {
      event.preventDefault();
      const blob = await (await api(artifact.url)).blob();
      element("a", { href: URL.createObjectURL(blob), download: artifact.path.split("/").pop() }).click();
    });
    return element("li", {}, link);
  }));
  listJobs();
}

$("#job-cancel").addEventListener("click", async () => {
  try {
    await api(`/v1/jobs/${$("#job-id").textContent}/cancel`, { method: "POST" });
  } catch (error) {
    say("jobs", error.message, true);
  }
});

loadChoices().then(refreshStatus);
