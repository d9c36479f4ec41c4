// The segment builder's tree editor: AND/OR groups of conditions, kept as JSON in the form's
// hidden "rules" input. Every change writes the JSON and fires "rules-changed" on the preview,
// which htmx posts (debounced) for the live count. The fields, their operators and value types
// come from segments.rules.field_catalogue(); the server validates, this only edits.
(() => {
  "use strict";

  const root = document.getElementById("rule-builder");
  if (!root) return;
  const input = document.getElementById(root.dataset.rulesInput);
  const preview = document.getElementById(root.dataset.preview);
  const readJSON = (id, fallback) => {
    const element = document.getElementById(id);
    return element ? JSON.parse(element.textContent) : fallback;
  };
  const fields = readJSON("segment-fields", []);
  const text = readJSON("segment-builder-text", {});
  const fieldsByKey = Object.fromEntries(fields.map((field) => [field.key, field]));
  let uid = 0;

  let tree;
  try {
    tree = JSON.parse(input.value || "{}");
  } catch (error) {
    tree = {};
  }
  if (!tree || !Array.isArray(tree.conditions)) tree = { op: "and", conditions: [] };

  // --- small DOM helpers ---------------------------------------------------------------------

  const el = (tag, attrs = {}, children = []) => {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "text") node.textContent = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else if (value === true) node.setAttribute(key, "");
      else node.setAttribute(key, value);
    }
    for (const child of children) if (child) node.append(child);
    return node;
  };

  const labelled = (labelText, control) => {
    const id = `rb-${++uid}`;
    control.id = id;
    return el("label", { for: id }, [el("span", { text: labelText }), control]);
  };

  const numberOrNull = (raw) => (raw === "" ? null : Number(raw));

  // --- values by field type and operator ----------------------------------------------------

  function defaultValue(field, op) {
    switch (field.type) {
      case "boolean":
        return true;
      case "window_count":
      case "window_amount":
        return { days: 365, min: 1, max: null };
      case "products":
        return { products: [], days: null };
      case "categories":
        return { categories: [], days: null };
      case "campaign":
        return { campaign: null, days: null };
      case "ticket_count":
        return { min: 1, max: null, open_only: false };
      case "date_range":
        return op === "within_last_days" ? 30 : [null, null];
      case "days":
        return op === "between" ? [null, null] : 90;
      case "int_range":
        return op === "between" ? [field.min, field.max] : [];
      default:
        return [];
    }
  }

  function multiSelect(options, selected, onChange, numeric) {
    const chosen = new Set((selected || []).map(String));
    const select = el("select", { multiple: true, size: Math.min(8, options.length) });
    for (const option of options) {
      select.append(
        el("option", { value: option.value, selected: chosen.has(String(option.value)) }, [
          option.label,
        ]),
      );
    }
    select.addEventListener("change", () => {
      const values = [...select.selectedOptions].map((o) => (numeric ? Number(o.value) : o.value));
      onChange(values);
    });
    return select;
  }

  function numberInput(value, onChange, attrs = {}) {
    const control = el("input", {
      type: "number",
      value: value === null || value === undefined ? "" : value,
      ...attrs,
    });
    control.addEventListener("input", () => onChange(control.value));
    return control;
  }

  function valueWidget(condition, field) {
    const box = el("div", { class: "rule-value" });
    const set = (value) => {
      condition.value = value;
      changed(false);
    };
    const value = condition.value;
    const bounds = { min: field.min ?? undefined, max: field.max ?? undefined };
    const pair = (labels, type, attrs) => {
      const current = Array.isArray(value) ? value : [null, null];
      const update = (index) => (raw) => {
        const next = [...current];
        next[index] = type === "number" ? numberOrNull(raw) : raw || null;
        current[index] = next[index];
        set(next);
      };
      for (const index of [0, 1]) {
        const control =
          type === "number"
            ? numberInput(current[index], update(index), attrs)
            : el("input", { type: "date", value: current[index] || "" });
        if (type !== "number") control.addEventListener("input", () => update(index)(control.value));
        box.append(labelled(labels[index], control));
      }
    };
    const windowed = (keys, amount) => {
      const current = { ...value };
      for (const [key, label] of keys) {
        const control = numberInput(current[key], (raw) => {
          if (raw === "") current[key] = null;
          else current[key] = amount && key !== "days" ? raw : Number(raw);
          set({ ...current });
        }, { min: 0, step: amount && key !== "days" ? "any" : 1 });
        box.append(labelled(label, control));
      }
      return current;
    };
    // The optional "in the last N days" of a purchase or campaign condition.
    const lastDays = (current) => {
      const control = numberInput(current.days, (raw) => {
        current.days = numberOrNull(raw);
        set({ ...current });
      }, { min: 0 });
      box.append(labelled(text.inLastDays, control));
    };

    switch (field.type) {
      case "choices":
        box.append(labelled(text.value, multiSelect(field.choices || [], value, set, false)));
        break;
      case "int_list":
        box.append(labelled(text.value, multiSelect(field.choices || [], value, set, true)));
        break;
      case "int_range":
        if (condition.op === "between") pair([text.min, text.max], "number", bounds);
        else {
          const options = [];
          for (let n = field.min; n <= field.max; n++) options.push({ value: n, label: String(n) });
          box.append(labelled(text.value, multiSelect(options, value, set, true)));
        }
        break;
      case "boolean": {
        const select = el("select", {}, [
          el("option", { value: "true", selected: value === true }, [text.yes]),
          el("option", { value: "false", selected: value === false }, [text.no]),
        ]);
        select.addEventListener("change", () => set(select.value === "true"));
        box.append(labelled(text.value, select));
        break;
      }
      case "date_range":
        if (condition.op === "within_last_days") {
          box.append(labelled(text.days, numberInput(value, (raw) => set(numberOrNull(raw)), { min: 0 })));
        } else pair([text.from, text.to], "date");
        break;
      case "days":
        if (condition.op === "between") pair([text.min, text.max], "number", bounds);
        else box.append(labelled(text.days, numberInput(value, (raw) => set(numberOrNull(raw)), bounds)));
        break;
      case "window_count":
      case "window_amount":
        windowed([["days", text.days], ["min", text.min], ["max", text.max]], field.type === "window_amount");
        break;
      case "ticket_count": {
        const current = windowed([["min", text.min], ["max", text.max]], false);
        const box2 = el("input", { type: "checkbox", checked: Boolean(value.open_only) });
        box2.addEventListener("change", () => {
          current.open_only = box2.checked;
          set({ ...current });
        });
        box.append(labelled(text.openOnly, box2));
        break;
      }
      case "products":
      case "categories": {
        const key = field.type;
        const current = { ...value };
        if (key === "categories" && field.choices && field.choices.length) {
          box.append(
            labelled(text.value, multiSelect(field.choices, current[key], (values) => {
              current[key] = values;
              set({ ...current });
            }, false)),
          );
        } else {
          const control = el("input", { type: "text", value: (current[key] || []).join(", ") });
          control.addEventListener("input", () => {
            current[key] = control.value.split(",").map((s) => s.trim()).filter(Boolean);
            set({ ...current });
          });
          box.append(labelled(key === "products" ? text.products : text.value, control));
        }
        lastDays(current);
        break;
      }
      case "campaign": {
        // One campaign (ids as numbers, as the server checks them), optionally a day window.
        const current = { ...value };
        const select = el("select", { required: true }, [
          el("option", { value: "", selected: current.campaign === null }, ["—"]),
          ...(field.choices || []).map((option) =>
            el("option", { value: option.value, selected: String(current.campaign) === option.value }, [
              option.label,
            ]),
          ),
        ]);
        select.addEventListener("change", () => {
          current.campaign = select.value === "" ? null : Number(select.value);
          set({ ...current });
        });
        box.append(labelled(text.value, select));
        lastDays(current);
        break;
      }
      default: {
        // A field type this script does not know (registered by another app): raw JSON.
        const control = el("input", { type: "text", value: JSON.stringify(value ?? null) });
        control.addEventListener("input", () => {
          try {
            set(JSON.parse(control.value));
          } catch (error) {
            /* keep the last valid value until the JSON is complete */
          }
        });
        box.append(labelled(text.value, control));
      }
    }
    if (field.help_text) box.append(el("small", { class: "help", text: field.help_text }));
    return box;
  }

  // --- the tree ------------------------------------------------------------------------------

  function fieldSelect(condition) {
    const select = el("select", { required: true }, [
      el("option", { value: "", selected: !condition.field }, [text.chooseField]),
    ]);
    const groups = new Map();
    for (const field of fields) {
      if (!groups.has(field.group)) {
        const optgroup = el("optgroup", { label: field.group_label });
        groups.set(field.group, optgroup);
        select.append(optgroup);
      }
      groups.get(field.group).append(
        el("option", { value: field.key, selected: field.key === condition.field }, [field.label]),
      );
    }
    select.addEventListener("change", () => {
      const field = fieldsByKey[select.value];
      condition.field = select.value;
      condition.op = field ? field.operators[0].key : "";
      condition.value = field ? defaultValue(field, condition.op) : null;
      changed(true);
    });
    return select;
  }

  function operatorSelect(condition, field) {
    const select = el(
      "select",
      {},
      field.operators.map((op) => el("option", { value: op.key, selected: op.key === condition.op }, [op.label])),
    );
    select.addEventListener("change", () => {
      const before = condition.op;
      condition.op = select.value;
      // Operators of one field may take different shapes (a list or [min, max]).
      if (shapeOf(field, before) !== shapeOf(field, condition.op)) {
        condition.value = defaultValue(field, condition.op);
      }
      changed(true);
    });
    return select;
  }

  const SINGLE_NUMBER_OPS = ["at_least", "at_most", "within_last_days"];
  const shapeOf = (field, op) => {
    if (op === "between") return "pair";
    return SINGLE_NUMBER_OPS.includes(op) ? "number" : "list";
  };

  function renderCondition(condition, path, siblings, index) {
    const field = fieldsByKey[condition.field];
    const item = el("li", { class: "rule-condition", "data-path": path });
    item.append(labelled(text.field, fieldSelect(condition)));
    if (field) {
      item.append(labelled(text.operator, operatorSelect(condition, field)));
      item.append(valueWidget(condition, field));
    } else {
      item.append(el("span"));
    }
    item.append(
      el("button", {
        type: "button",
        class: "link-button",
        "aria-label": `${text.removeCondition} ${index + 1}`,
        title: text.removeCondition,
        text: "✕",
        onclick: () => {
          siblings.splice(index, 1);
          changed(true);
        },
      }),
    );
    return item;
  }

  function renderGroup(group, path, parent, index) {
    const box = el("div", { class: "rule-group", "data-path": path, role: "group" });
    const op = el("select", {}, [
      el("option", { value: "and", selected: group.op !== "or" }, [text.and]),
      el("option", { value: "or", selected: group.op === "or" }, [text.or]),
    ]);
    op.addEventListener("change", () => {
      group.op = op.value;
      changed(false);
    });
    const head = el("div", { class: "rule-group-head" }, [labelled(text.match, op)]);
    if (parent) {
      head.append(
        el("button", {
          type: "button",
          class: "button danger",
          text: text.removeGroup,
          onclick: () => {
            parent.splice(index, 1);
            changed(true);
          },
        }),
      );
    }
    box.append(head);
    const list = el("ol", { class: "rule-children" });
    group.conditions.forEach((child, n) => {
      const childPath = `${path ? `${path}.` : ""}conditions.${n}`;
      if (child && Array.isArray(child.conditions)) {
        list.append(el("li", {}, [renderGroup(child, childPath, group.conditions, n)]));
      } else {
        list.append(renderCondition(child, childPath, group.conditions, n));
      }
    });
    if (!group.conditions.length && !parent) list.append(el("li", { class: "muted", text: text.empty }));
    box.append(list);
    const depth = path ? path.split("conditions").length - 1 : 0;
    box.append(
      el("div", { class: "rule-actions" }, [
        el("button", {
          type: "button",
          class: "button",
          text: text.addCondition,
          onclick: () => {
            group.conditions.push({ field: "", op: "", value: null });
            changed(true);
          },
        }),
        depth < 3
          ? el("button", {
              type: "button",
              class: "button",
              text: text.addGroup,
              onclick: () => {
                group.conditions.push({ op: group.op === "and" ? "or" : "and", conditions: [] });
                changed(true);
              },
            })
          : null,
      ]),
    );
    return box;
  }

  function render() {
    root.replaceChildren(renderGroup(tree, "", null, 0));
  }

  // --- changes and the live preview ----------------------------------------------------------

  function changed(structural) {
    input.value = JSON.stringify(tree);
    if (structural) render();
    if (preview) preview.dispatchEvent(new CustomEvent("rules-changed"));
  }

  // Each problem the server found goes beside the condition (or group) its path names.
  function showErrors(errors) {
    root.querySelectorAll(".rule-error").forEach((node) => node.remove());
    root.querySelectorAll(".rule-invalid").forEach((node) => node.classList.remove("rule-invalid"));
    const nodes = [...root.querySelectorAll("[data-path]")];
    for (const error of errors || []) {
      let target = null;
      for (const node of nodes) {
        const path = node.dataset.path;
        const inside = path === "" || error.path === path || error.path.startsWith(`${path}.`);
        if (inside && (!target || path.length > target.dataset.path.length)) target = node;
      }
      if (!target) continue;
      target.classList.add("rule-invalid");
      target.append(el("p", { class: "rule-error", role: "alert", text: error.message }));
    }
  }

  document.body.addEventListener("htmx:afterSwap", (event) => {
    if (event.detail.target === preview) showErrors(readJSON("preview-rule-errors", []));
  });

  input.value = JSON.stringify(tree);
  render();
  showErrors(readJSON("rule-errors", []));
})();
