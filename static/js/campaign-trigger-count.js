// Automation form: "today the trigger would match N customers", asked of the JSON endpoint
// (campaigns:trigger-count) once the page is shown and whenever the trigger or the segment
// changes, since counting takes seconds on a large base. Without it the page shows no count.
(() => {
  "use strict";
  const FIELDS = /^(trigger-(kind|days|gap_multiplier|send_hour)|segment)$/;

  function setUp(output) {
    const form = output.closest("form");
    if (!form) return;
    let timer = null;
    let latest = 0;

    async function count() {
      const query = new URLSearchParams();
      for (const [name, value] of new FormData(form)) {
        if (FIELDS.test(name)) query.append(name, value);
      }
      if (output.dataset.campaign) query.append("campaign", output.dataset.campaign);
      const asked = ++latest;
      output.hidden = false;
      output.textContent = output.dataset.counting;
      try {
        const response = await fetch(`${output.dataset.triggerCount}?${query}`, {
          headers: { Accept: "application/json" },
          credentials: "same-origin",
        });
        if (asked !== latest) return; // a newer question is on its way
        if (!response.ok) {
          output.hidden = true;
          return;
        }
        output.textContent = (await response.json()).text;
      } catch {
        if (asked === latest) output.hidden = true;
      }
    }

    const later = (event) => {
      if (!FIELDS.test(event.target.name || "")) return;
      clearTimeout(timer);
      timer = setTimeout(count, 400);
    };
    form.addEventListener("input", later);
    form.addEventListener("change", later);
    count();
  }

  document.addEventListener("DOMContentLoaded", () => {
    document.querySelectorAll("[data-trigger-count]").forEach(setUp);
  });
})();
