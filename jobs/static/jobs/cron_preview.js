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

  // What else moves the fires, as the form has it now: the preview then tells the truth
  // (/api/cron/preview/job/: the walk beat does, each fire marked moved or skipped, and why).
  function field(name) { return document.getElementById("id_" + name); }
  function draftParams(expr) {
    const params = new URLSearchParams({ expr: expr, count: "5" });
    if (zone && zone.value.trim()) params.set("timezone", zone.value.trim());
    const id = field("id");
    if (id && id.value.trim()) params.set("id", id.value.trim());
    for (const name of ["jitter_seconds", "dst_policy", "blackout_policy"]) {
      const input = field(name);
      if (input && input.value.trim()) params.set(name, input.value.trim());
    }
    const calendars = [...document.querySelectorAll('input[name="calendars"]:checked')].map((box) => box.value);
    if (calendars.length) params.set("calendars", calendars.join(","));
    return params;
  }

  // The admin's one format: "2026-12-04 05:00:00", then the zone ("+08:00 Asia/Shanghai").
  function shownTime(iso, timezone) {
    const match = /^(\d{4}-\d\d-\d\d)T(\d\d:\d\d:\d\d)(?:\.\d+)?(Z|[+-]\d\d:\d\d)$/.exec(iso);
    return match ? match[1] + " " + match[2] + " " + (match[3] === "Z" ? "+00:00" : match[3]) + " " + timezone : iso;
  }

  async function refresh() {
    const expr = cron.value.trim();
    if (!expr) { show([], false); return; }
    const request = ++latest;
    const params = new URLSearchParams({ expr: expr, count: "5" });
    if (zone && zone.value.trim()) params.set("timezone", zone.value.trim());
    try {
      const [described, draft] = await Promise.all([
        fetch(config.url + "?" + params, { credentials: "same-origin" }),
        config.draft_url ? fetch(config.draft_url + "?" + draftParams(expr), { credentials: "same-origin" }) : null,
      ]);
      const body = await described.json();
      if (request !== latest) return;
      if (!described.ok) { show(Object.values(body).flat(), true); return; }
      let lines = body.next_fire_times.map((iso) => shownTime(iso, body.timezone));
      if (draft && draft.ok) {
        const walked = await draft.json();
        if (request !== latest) return;
        lines = walked.fires.map((fire) => {
          const mark = fire.skipped ? _("skipped: ") : (fire.moved ? _("moved: ") : "");
          return shownTime(fire.at, walked.timezone) + (fire.reasons.length ? " (" + mark + fire.reasons.join("; ") + ")" : "");
        });
      }
      show([fmt(_("%s — next:"), [body.description]), ...lines], false);
    } catch (err) {
      if (request === latest) show([fmt(_("Preview unavailable: %s"), [String(err)])], true);
    }
  }

  function schedule() { clearTimeout(timer); timer = setTimeout(refresh, 250); }
  cron.addEventListener("input", schedule);
  if (zone) zone.addEventListener("input", schedule);
  for (const name of ["id", "jitter_seconds", "dst_policy", "blackout_policy"]) {
    const input = field(name);
    if (input) { input.addEventListener("input", schedule); input.addEventListener("change", schedule); }
  }
  document.querySelectorAll('input[name="calendars"]').forEach((box) => box.addEventListener("change", schedule));
  refresh();
})();
