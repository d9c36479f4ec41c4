// Charts of a campaign's review page (Chart.js, vendored). The figures come from the page's
// JSON block; every chart has a table with the same figures beside it, so nothing depends on
// this file.
document.addEventListener("DOMContentLoaded", () => {
  const source = document.getElementById("campaign-review-data");
  if (!source || typeof window.Chart === "undefined") return;
  const data = JSON.parse(source.textContent);
  const text = data.text;
  const lang = document.documentElement.lang || undefined;
  const percent = (value) => new Intl.NumberFormat(lang, { style: "percent", maximumFractionDigits: 1 }).format(value);
  const colors = { open: "#1f6feb", click: "#1a7f37", conversion: "#cf222e" };
  const base = { responsive: true, maintainAspectRatio: false, animation: false };

  const draw = (id, config) => {
    const canvas = document.getElementById(id);
    if (canvas) canvas.chart = new window.Chart(canvas, config);
  };

  // Open, click and conversion rates of each group (variants, RFM labels) as grouped bars.
  const rates = (id, figures) => {
    if (!figures || !figures.labels.length) return;
    draw(id, {
      type: "bar",
      data: {
        labels: figures.labels,
        datasets: ["open", "click", "conversion"].map((key) => ({
          label: text[key],
          data: figures[key],
          backgroundColor: colors[key],
        })),
      },
      options: {
        ...base,
        plugins: { tooltip: { callbacks: { label: (item) => `${item.dataset.label}: ${percent(item.parsed.y)}` } } },
        scales: { y: { beginAtZero: true, ticks: { callback: (value) => percent(value) } } },
      },
    });
  };

  rates("variants-chart", data.variants);
  rates("rfm-chart", data.rfm);

  if (data.lift) {
    draw("lift-chart", {
      type: "bar",
      data: {
        labels: data.lift.labels,
        datasets: [{ label: text.conversion, data: data.lift.rates, backgroundColor: [colors.conversion, "#9aa3b2"] }],
      },
      options: {
        ...base,
        indexAxis: "y",
        plugins: { legend: { display: false }, tooltip: { callbacks: { label: (item) => percent(item.parsed.x) } } },
        scales: { x: { beginAtZero: true, ticks: { callback: (value) => percent(value) } } },
      },
    });
  }

  draw("hours-chart", {
    type: "bar",
    data: { labels: data.hours.labels, datasets: [{ label: text.opened, data: data.hours.opened, backgroundColor: colors.open }] },
    options: {
      ...base,
      plugins: { legend: { display: false } },
      scales: { x: { title: { display: true, text: text.hour } }, y: { beginAtZero: true, ticks: { precision: 0 } } },
    },
  });
});
