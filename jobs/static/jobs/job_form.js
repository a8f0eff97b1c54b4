// The job form shows only the fields of the chosen kind and trigger, and the chosen handler's
// parameters from the registry (/api/handlers/).
"use strict";
(function () {
  const config = JSON.parse(document.getElementById("cron-preview-config").textContent);
  // The words are the djangojs catalogue's (jsi18n/, loaded by admin/base_site.html) in the page's language.
  const _ = window.gettext || ((text) => text);
  const fmt = (text, args) => (window.interpolate ? window.interpolate(text, args) : text.replace("%s", args[0]));
  const kind = document.getElementById("id_kind");
  const trigger = document.getElementById("id_trigger");
  const triggerRows = { cron: ["cron", "timezone"], interval: ["interval_seconds"], date: ["run_at", "timezone"], manual: [] };

  function row(field) {
    return document.querySelector(".form-row.field-" + field) || document.querySelector(".field-" + field);
  }

  function showKind() {
    if (!kind) return;
    for (const name of ["http", "python", "shell"]) {
      const set = document.querySelector("fieldset.ct-kind-" + name);
      if (set) set.style.display = kind.value === name ? "" : "none";
    }
  }

  function showTrigger() {
    if (!trigger) return;
    for (const [name, fields] of Object.entries(triggerRows)) {
      for (const field of fields) {
        const element = row(field);
        if (element) element.style.display = trigger.value === name ? "" : "none";
      }
    }
  }

  let handlers = null;
  async function showHandler() {
    const input = document.getElementById("id_handler");
    if (!input) return;
    let box = document.getElementById("handler-params");
    if (!box) {
      box = document.createElement("div");
      box.id = "handler-params";
      box.className = "help";
      input.insertAdjacentElement("afterend", box);
    }
    if (handlers === null) {
      try {
        const response = await fetch(config.handlers_url, { credentials: "same-origin" });
        handlers = response.ok ? await response.json() : [];
      } catch (err) {
        handlers = [];
      }
    }
    const found = handlers.find((h) => h.handler === input.value.trim());
    const lines = [];
    if (found) {
      lines.push(found.name + (found.description ? " — " + found.description : ""));
      for (const p of found.parameters) {
        const type = p.type || "any";
        const extra = p.required ? _("required") : fmt(_("default %s"), [JSON.stringify(p.default)]);
        lines.push(p.name + ": " + type + (p.nullable ? " | null" : "") + " (" + extra + ")");
      }
    } else if (handlers.length) {
      lines.push(fmt(_("Scripts: %s"), [handlers.map((h) => h.handler).join(", ")]));
    }
    box.replaceChildren(...lines.map((text) => {
      const line = document.createElement("div");
      line.textContent = text;
      return line;
    }));
  }

  // A one-off's date is read in the job's zone: its help names the zone as it is typed.
  const zone = document.getElementById("id_timezone");
  const zoneLabel = document.getElementById("ct-run-at-zone");
  if (zone && zoneLabel) zone.addEventListener("input", () => { zoneLabel.textContent = zone.value.trim(); });

  if (kind) kind.addEventListener("change", showKind);
  if (trigger) trigger.addEventListener("change", showTrigger);
  const handlerInput = document.getElementById("id_handler");
  if (handlerInput) {
    handlerInput.addEventListener("change", showHandler);
    handlerInput.addEventListener("input", showHandler);
  }
  showKind();
  showTrigger();
  showHandler();
})();
