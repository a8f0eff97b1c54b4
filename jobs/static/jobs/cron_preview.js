// Preview the next fire times of the cron expression as it is typed, from /api/cron/preview/
// (the same validation and messages as the API).
"use strict";
(function () {
  const config = JSON.parse(document.getElementById("cron-preview-config").textContent);
  // The words are the djangojs catalogue's (jsi18n/, loaded by admin/base_site.html) in the page's language.
  const _ = window.gettext || ((text) => text);
  const fmt = (text, args) => (window.interpolate ? window.interpolate(text, args) : text.replace("%s", args[0]));
  const cron = document.getElementById("id_cron");
  const zone = document.getElementById("id_timezone");
  if (!cron) return;
  const box = document.createElement("div");
  box.id = "cron-preview";
  box.className = "help";
  box.setAttribute("aria-live", "polite");
  cron.insertAdjacentElement("afterend", box);
  let timer = null;
  let latest = 0;

  function show(lines, isError) {
    box.replaceChildren(...lines.map((text) => {
      const line = document.createElement("div");
      line.textContent = text;
      return line;
    }));
    box.style.color = isError ? "var(--error-fg, #ba2121)" : "";
  }

  async function refresh() {
    const expr = cron.value.trim();
    if (!expr) { show([], false); return; }
    const request = ++latest;
    const params = new URLSearchParams({ expr: expr, count: "5" });
    if (zone && zone.value.trim()) params.set("timezone", zone.value.trim());
    try {
      const response = await fetch(config.url + "?" + params, { credentials: "same-origin" });
      const body = await response.json();
      if (request !== latest) return;
      if (response.ok) {
        // The admin's one format: "2026-12-04 05:00:00", then the zone ("+08:00 Asia/Shanghai").
        const shown = body.next_fire_times.map((iso) => {
          const match = /^(\d{4}-\d\d-\d\d)T(\d\d:\d\d:\d\d)(?:\.\d+)?(Z|[+-]\d\d:\d\d)$/.exec(iso);
          return match ? match[1] + " " + match[2] + " " + (match[3] === "Z" ? "+00:00" : match[3]) + " " + body.timezone : iso;
        });
        show([fmt(_("%s — next:"), [body.description]), ...shown], false);
      } else {
        show(Object.values(body).flat(), true);
      }
    } catch (err) {
      if (request === latest) show([fmt(_("Preview unavailable: %s"), [String(err)])], true);
    }
  }

  function schedule() { clearTimeout(timer); timer = setTimeout(refresh, 250); }
  cron.addEventListener("input", schedule);
  if (zone) zone.addEventListener("input", schedule);
  refresh();
})();
