// Keeps the relative times beside absolute ones fresh ("in 8 s", "3 min ago"): each
// span.ct-rel[data-at] holds the ISO time; the words are the server's (core.times.relative_words),
// translated, so the page reads the same before and after a refresh.
"use strict";
(function () {
  const source = document.getElementById("ct-relative-words");
  if (!source) return;
  const words = JSON.parse(source.textContent);
  const fill = (text, name, value) => text.replace("%(" + name + ")d", value).replace("%(" + name + ")s", value);

  function relative(seconds) {
    const span = Math.abs(seconds);
    if (span < 1) return words.now;
    let amount;
    if (span < 60) amount = fill(words.s, "n", span);
    else if (span < 3600) amount = fill(words.min, "n", Math.floor(span / 60));
    else if (span < 2 * 86400) amount = fill(words.h, "n", Math.floor(span / 3600));
    else amount = fill(words.d, "n", Math.floor(span / 86400));
    return fill(seconds > 0 ? words.in : words.ago, "amount", amount);
  }

  function refresh() {
    const now = Date.now();
    for (const span of document.querySelectorAll("span.ct-rel[data-at]")) {
      span.textContent = "(" + relative(Math.round((Date.parse(span.dataset.at) - now) / 1000)) + ")";
    }
  }
  setInterval(refresh, 1000);
})();
