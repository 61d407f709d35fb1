// Times in the reader's own time zone. The server writes every <time data-local> in UTC and
// says so ("2026-12-01 05:00 UTC"); this rewrites it in the browser's time zone with the
// zone's short name ("2026-12-01 14:00 JST"), the UTC text staying as its title.
"use strict";
(function () {
  const lang = document.documentElement.lang || "en";
  const zone = (d) => {
    const part = new Intl.DateTimeFormat(lang, { timeZoneName: "short" })
      .formatToParts(d)
      .find((p) => p.type === "timeZoneName");
    return part ? part.value : "";
  };
  const two = (n) => String(n).padStart(2, "0");
  document.querySelectorAll("time[data-local]").forEach((el) => {
    const d = new Date(el.dateTime);
    if (Number.isNaN(d.getTime())) return;
    const date = `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())}`;
    const clock = `${two(d.getHours())}:${two(d.getMinutes())}`;
    el.title = el.textContent;
    el.textContent = `${date} ${clock} ${zone(d)}`.trim();
  });
})();
