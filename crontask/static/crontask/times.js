// Keeps the relative times beside absolute ones fresh ("in 8 s", "3 min ago"): each
// span.ct-rel[data-at] holds the ISO time; the browser's own words for the page's language.
"use strict";
(function () {
  const lang = document.documentElement.lang || "en";
  let words;
  try {
    words = new Intl.RelativeTimeFormat(lang, { numeric: "always", style: "narrow" });
  } catch (err) {
    return;
  }
  const units = [["day", 86400], ["hour", 3600], ["minute", 60], ["second", 1]];
  function refresh() {
    const now = Date.now();
    for (const span of document.querySelectorAll("span.ct-rel[data-at]")) {
      const seconds = Math.round((Date.parse(span.dataset.at) - now) / 1000);
      const size = Math.abs(seconds);
      const [unit, step] = units.find(([, s]) => size >= (s === 86400 ? 2 * s : s)) || ["second", 1];
      span.textContent = "(" + words.format(Math.trunc(seconds / step), unit) + ")";
    }
  }
  setInterval(refresh, 1000);
})();
