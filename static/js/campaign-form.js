// Campaign and automation form: "Add variant" clones the formset's empty form with the next
// free label (A, B, C…), the weights' total is shown as they are typed, and the win-back
// multiplier is shown only for a win-back trigger. The page works without it (one variant).
(() => {
  "use strict";
  const LABELS = "ABCDEFGHIJ";

  function setUpVariants(section) {
    const prefix = section.dataset.prefix;
    const list = section.querySelector("[data-variant-list]");
    const template = section.querySelector("[data-variant-template]");
    const total = document.getElementById(`id_${prefix}-TOTAL_FORMS`);
    const max = document.getElementById(`id_${prefix}-MAX_NUM_FORMS`);
    const addButton = section.querySelector("[data-add-variant]");
    const totalOut = section.querySelector("[data-weight-total]");

    const liveVariants = () =>
      [...list.querySelectorAll("[data-variant]")].filter(
        (fieldset) => !fieldset.querySelector('input[name$="-DELETE"]')?.checked,
      );

    function refresh() {
      const sum = liveVariants().reduce((acc, fieldset) => {
        const value = parseInt(fieldset.querySelector(".variant-weight")?.value, 10);
        return acc + (Number.isNaN(value) ? 0 : value);
      }, 0);
      totalOut.textContent = String(sum);
      totalOut.parentElement.classList.toggle("weight-off", sum !== 100);
      list.querySelectorAll("[data-variant]").forEach((fieldset) => {
        const label = fieldset.querySelector(".variant-label");
        const title = fieldset.querySelector("[data-variant-title]");
        if (label && title) title.textContent = label.value;
        fieldset.classList.toggle(
          "variant-removed",
          Boolean(fieldset.querySelector('input[name$="-DELETE"]')?.checked),
        );
      });
      addButton.disabled = parseInt(total.value, 10) >= parseInt(max.value, 10);
    }

    addButton.addEventListener("click", () => {
      const index = parseInt(total.value, 10);
      const html = template.innerHTML.replace(/__prefix__/g, String(index));
      list.insertAdjacentHTML("beforeend", html);
      total.value = String(index + 1);
      const added = list.lastElementChild;
      const used = new Set([...list.querySelectorAll(".variant-label")].map((input) => input.value));
      const label = [...LABELS].find((letter) => !used.has(letter)) || "";
      added.querySelector(".variant-label").value = label;
      // Share the weights evenly among the live variants, the remainder to the first ones.
      const live = liveVariants();
      live.forEach((fieldset, i) => {
        const share = Math.floor(100 / live.length) + (i < 100 % live.length ? 1 : 0);
        fieldset.querySelector(".variant-weight").value = String(share);
      });
      refresh();
      added.querySelector('input[name$="-subject"]')?.focus();
    });
    section.addEventListener("input", refresh);
    section.addEventListener("change", refresh);
    refresh();
  }

  function setUpTrigger(fieldset) {
    const kind = fieldset.querySelector('select[name$="kind"]');
    const winBackOnly = fieldset.querySelectorAll("[data-win-back-only]");
    if (!kind || !winBackOnly.length) return;
    const show = () => {
      winBackOnly.forEach((element) => {
        element.hidden = kind.value !== "win_back";
      });
    };
    kind.addEventListener("change", show);
    show();
  }

  document.addEventListener("DOMContentLoaded", () => {
    document.querySelectorAll("#variants[data-prefix]").forEach(setUpVariants);
    document.querySelectorAll("[data-trigger]").forEach(setUpTrigger);
  });
})();
