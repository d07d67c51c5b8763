/*
 * The segment rule builder of the admin's segment page (campaigns/admin/segments.py).
 *
 * The form's field is the textarea #id_rules holding the rules as JSON; without this script staff edit that JSON.
 * The script hides the textarea and draws the rules as rows of conditions: the root's "all of" / "any of", each
 * condition's field picked from the conditions the server offers (grouped), its parameters, and groups nested one
 * level. Every change is written back to the textarea as JSON (what the form saves and the server checks) and
 * counted on the server after a short pause. The page renders the configuration as JSON
 * (#segment-builder-config): the conditions, the count's address and the words in the user's language.
 */
(function () {
    "use strict";

    const configNode = document.getElementById("segment-builder-config");
    const textarea = document.getElementById("id_rules");
    if (!configNode || !textarea) {
        return;
    }
    const config = JSON.parse(configNode.textContent);
    const L = config.labels;
    const schema = config.schema || [];
    const byField = new Map(schema.map(function (condition) { return [condition.field, condition]; }));
    const COUNT_DELAY_MS = 600;
    const FILTER_FROM = 12;

    let rules = null;
    let countTimer = null;
    let countAbort = null;

    // --- small helpers ----------------------------------------------------------------------------------------

    function el(tag, attrs, children) {
        const node = document.createElement(tag);
        Object.entries(attrs || {}).forEach(function ([name, value]) {
            if (value === null || value === undefined || value === false) {
                return;
            }
            if (name === "text") {
                node.textContent = value;
            } else if (name.startsWith("on")) {
                node.addEventListener(name.slice(2), value);
            } else if (name === "className") {
                node.className = value;
            } else {
                node.setAttribute(name, value === true ? "" : value);
            }
        });
        (children || []).forEach(function (child) {
            if (child !== null && child !== undefined) {
                node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
            }
        });
        return node;
    }

    function interpolate(text, values) {
        return text.replace(/%\((\w+)\)s/g, function (match, name) {
            return name in values ? String(values[name]) : match;
        });
    }

    function isEmpty(value) {
        return value === null || value === undefined || value === "" || (Array.isArray(value) && !value.length);
    }

    function isGroup(condition) {
        return condition !== null && typeof condition === "object" && Array.isArray(condition.conditions);
    }

    function choicesOf(param) {
        return Array.isArray(param.choices) ? param.choices : [];
    }

    // A choice's value as the server gave it (a month is a number, a code a string).
    function choiceValue(param, text) {
        const found = choicesOf(param).find(function (choice) { return String(choice[0]) === text; });
        return found ? found[0] : text;
    }

    function csrfToken() {
        const input = textarea.form && textarea.form.querySelector("input[name=csrfmiddlewaretoken]");
        return input ? input.value : "";
    }

    function purpose() {
        const field = textarea.form && textarea.form.elements.namedItem("purpose");
        if (!field) {
            return "marketing";
        }
        if (field.value !== undefined && field.value !== "") {
            return field.value;
        }
        const checked = textarea.form.querySelector("input[name=purpose]:checked");
        return checked ? checked.value : "marketing";
    }

    // --- the rules as JSON --------------------------------------------------------------------------------------

    function cleaned(condition) {
        if (isGroup(condition)) {
            const inner = condition.conditions.map(cleaned).filter(function (item) { return item !== null; });
            return inner.length ? {match: condition.match === "any" ? "any" : "all", conditions: inner} : null;
        }
        if (condition === null || typeof condition !== "object") {
            return condition;
        }
        if (condition.field === "") {
            return null;
        }
        const out = {};
        Object.entries(condition).forEach(function ([name, value]) {
            if (!isEmpty(value)) {
                out[name] = value;
            }
        });
        return out;
    }

    function serialised() {
        return {
            match: rules.match === "any" ? "any" : "all",
            conditions: rules.conditions.map(cleaned).filter(function (item) { return item !== null; }),
        };
    }

    function changed() {
        textarea.value = JSON.stringify(serialised(), null, 2);
        countSoon();
    }

    function readTextarea() {
        const text = textarea.value.trim();
        if (!text || text === "null" || /^\{\s*\}$/.test(text)) {
            const start = {match: "all", conditions: []};
            if (purpose() === "marketing" && byField.has("marketing_consent")) {
                start.conditions.push({field: "marketing_consent", value: true});
            }
            return start;
        }
        let parsed;
        try {
            parsed = JSON.parse(text);
        } catch (error) {
            return null;
        }
        if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
            return null;
        }
        if (parsed.conditions === undefined) {
            parsed.conditions = [];
        }
        return Array.isArray(parsed.conditions) ? parsed : null;
    }

    // --- drawing --------------------------------------------------------------------------------------------------

    const builder = el("div", {className: "segment-builder"});
    const countBox = el("div", {className: "segment-count", "aria-live": "polite"});
    const notice = el("p", {className: "segment-builder-notice errornote", hidden: true, text: L.unreadable});
    const jsonToggle = el("button", {type: "button", className: "button segment-json-toggle", text: L.showJson});
    const jsonApply = el("button", {type: "button", className: "button segment-json-apply", text: L.applyJson,
                                    hidden: true});

    function matchSelect(value, labelAll, labelAny, onchange) {
        const select = el("select", {className: "segment-match", onchange: function () { onchange(select.value); }}, [
            el("option", {value: "all", text: labelAll}),
            el("option", {value: "any", text: labelAny}),
        ]);
        select.value = value === "any" ? "any" : "all";
        return select;
    }

    function fieldSelect(condition, onchange) {
        const select = el("select", {className: "segment-field", "aria-label": L.chooseField});
        select.appendChild(el("option", {value: "", text: "— " + L.chooseField + " —"}));
        const groups = new Map();
        schema.forEach(function (item) {
            const group = item.group || "";
            if (!groups.has(group)) {
                groups.set(group, el("optgroup", {label: group}));
                select.appendChild(groups.get(group));
            }
            groups.get(group).appendChild(el("option", {value: item.field, text: item.label}));
        });
        select.value = condition.field || "";
        select.addEventListener("change", function () { onchange(select.value); });
        return select;
    }

    function paramInput(condition, param) {
        const value = condition[param.name];
        const label = param.label + (param.required ? " *" : "");
        let input;
        if (param.type === "codes" || param.type === "months" || (param.type === "choice" && !param.single)) {
            const choices = choicesOf(param);
            const selected = new Set((Array.isArray(value) ? value : []).map(String));
            input = el("select", {multiple: true, size: Math.min(Math.max(choices.length, 2), 6)},
                choices.map(function (choice) {
                    return el("option", {value: String(choice[0]), text: choice[1],
                                         selected: selected.has(String(choice[0]))});
                }));
            input.addEventListener("change", function () {
                condition[param.name] = Array.from(input.selectedOptions).map(function (option) {
                    return choiceValue(param, option.value);
                });
                changed();
            });
        } else if (param.type === "choice") {
            const choices = choicesOf(param);
            input = el("select", {}, [
                param.required ? null : el("option", {value: "", text: L.any_value}),
            ].concat(choices.map(function (choice) {
                return el("option", {value: String(choice[0]), text: choice[1]});
            })));
            input.value = isEmpty(value) ? (param.required && choices.length ? String(choices[0][0]) : "")
                : String(value);
            if (param.required && isEmpty(value) && choices.length) {
                condition[param.name] = choices[0][0];
            }
            input.addEventListener("change", function () {
                condition[param.name] = input.value === "" ? null : choiceValue(param, input.value);
                changed();
            });
        } else if (param.type === "bool" && param.required) {
            input = el("select", {}, [el("option", {value: "true", text: L.yes}),
                                      el("option", {value: "false", text: L.no})]);
            if (value !== true && value !== false) {
                condition[param.name] = true;
            }
            input.value = condition[param.name] === false ? "false" : "true";
            input.addEventListener("change", function () {
                condition[param.name] = input.value === "true";
                changed();
            });
        } else if (param.type === "bool") {
            input = el("input", {type: "checkbox", checked: value === true});
            input.addEventListener("change", function () {
                condition[param.name] = input.checked ? true : null;
                changed();
            });
        } else if (param.type === "int") {
            input = el("input", {type: "number", step: "1", className: "segment-number", min: param.min,
                                 max: param.max, value: isEmpty(value) ? "" : String(value)});
            input.addEventListener("input", function () {
                const text = input.value.trim();
                condition[param.name] = text === "" ? null : (/^-?\d+$/.test(text) ? parseInt(text, 10) : text);
                changed();
            });
        } else {
            input = el("input", {type: "text", inputmode: param.type === "decimal" ? "decimal" : null,
                                 className: "segment-text", value: isEmpty(value) ? "" : String(value)});
            input.addEventListener("input", function () {
                condition[param.name] = input.value.trim() === "" ? null : input.value.trim();
                changed();
            });
        }
        return el("label", {className: "segment-param" + (param.required ? " required" : "")},
                  [el("span", {className: "segment-param-label", text: label}), optionFilter(input), input]);
    }

    // A long list (some 300 stores) gets a box that narrows the options shown to those holding what is typed.
    function optionFilter(select) {
        if (select.tagName !== "SELECT" || !select.multiple || select.options.length <= FILTER_FROM) {
            return null;
        }
        const box = el("input", {type: "search", className: "segment-filter", placeholder: L.filter,
                                 "aria-label": L.filter});
        box.addEventListener("input", function () {
            const text = box.value.trim().toLowerCase();
            Array.from(select.options).forEach(function (option) {
                option.hidden = text !== "" && !option.textContent.toLowerCase().includes(text) && !option.selected;
            });
        });
        return box;
    }

    function conditionRow(condition, number, list, index) {
        const remove = el("button", {type: "button", className: "segment-remove", title: L.remove,
                                     "aria-label": L.remove, text: "×",
                                     onclick: function () { list.splice(index, 1); redraw(); }});
        const head = el("span", {className: "segment-number-label", text: number + "."});
        if (condition === null || typeof condition !== "object" || isGroup(condition)
                || (condition.field && !byField.has(condition.field))) {
            return el("div", {className: "segment-row segment-row-unknown"}, [
                head, el("span", {text: L.unknown}), el("code", {text: JSON.stringify(condition)}), remove,
            ]);
        }
        const definition = byField.get(condition.field);
        const select = fieldSelect(condition, function (field) {
            Object.keys(condition).forEach(function (name) { delete condition[name]; });
            condition.field = field;
            redraw();
        });
        const params = definition ? (definition.params || []).map(function (param) {
            return paramInput(condition, param);
        }) : [];
        return el("div", {className: "segment-row"}, [
            head, select, el("div", {className: "segment-params"}, params), remove,
        ]);
    }

    function groupBox(group, number, list, index) {
        const rows = group.conditions.map(function (condition, inner) {
            return conditionRow(condition, number + "." + (inner + 1), group.conditions, inner);
        });
        return el("div", {className: "segment-group"}, [
            el("div", {className: "segment-group-head"}, [
                el("span", {className: "segment-number-label", text: number + "."}),
                el("span", {text: L.group + ": "}),
                matchSelect(group.match, L.groupAll, L.groupAny, function (value) {
                    group.match = value;
                    changed();
                }),
                el("button", {type: "button", className: "button segment-remove-group", text: L.removeGroup,
                              onclick: function () { list.splice(index, 1); redraw(); }}),
            ]),
            el("div", {className: "segment-group-rows"}, rows),
            el("button", {type: "button", className: "button segment-add", text: "+ " + L.addToGroup,
                          onclick: function () { group.conditions.push({field: ""}); redraw(); }}),
        ]);
    }

    function redraw() {
        builder.replaceChildren();
        builder.appendChild(el("div", {className: "segment-root-head"}, [
            el("span", {text: L.intro + " "}),
            matchSelect(rules.match, L.all, L.any, function (value) {
                rules.match = value;
                changed();
            }),
        ]));
        const rows = rules.conditions.map(function (condition, index) {
            const number = String(index + 1);
            if (isGroup(condition) && condition.conditions.every(function (inner) { return !isGroup(inner); })) {
                return groupBox(condition, number, rules.conditions, index);
            }
            return conditionRow(condition, number, rules.conditions, index);
        });
        builder.appendChild(rows.length ? el("div", {className: "segment-rows"}, rows)
            : el("p", {className: "segment-empty", text: L.empty}));
        builder.appendChild(el("div", {className: "segment-buttons"}, [
            el("button", {type: "button", className: "button segment-add", text: "+ " + L.addCondition,
                          onclick: function () { rules.conditions.push({field: ""}); redraw(); }}),
            el("button", {type: "button", className: "button segment-add-group", text: "+ " + L.addGroup,
                          onclick: function () {
                              rules.conditions.push({match: "any", conditions: [{field: ""}]});
                              redraw();
                          }}),
        ]));
        changed();
    }

    // --- the live count ---------------------------------------------------------------------------------------

    function showCount(state, content, count) {
        countBox.className = "segment-count segment-count-" + state;
        countBox.dataset.count = count === undefined ? "" : String(count);
        countBox.replaceChildren();
        if (Array.isArray(content)) {
            countBox.appendChild(el("ul", {className: "errorlist"}, content.map(function (text) {
                return el("li", {text: String(text)});
            })));
        } else {
            countBox.textContent = content;
        }
    }

    function countSoon() {
        clearTimeout(countTimer);
        showCount("busy", L.counting);
        countTimer = setTimeout(countNow, COUNT_DELAY_MS);
    }

    function countNow() {
        if (countAbort) {
            countAbort.abort();
        }
        countAbort = new AbortController();
        showCount("busy", L.counting);
        fetch(config.countUrl, {
            method: "POST",
            credentials: "same-origin",
            signal: countAbort.signal,
            headers: {"Content-Type": "application/json", "X-CSRFToken": csrfToken(),
                      "X-Requested-With": "XMLHttpRequest"},
            body: JSON.stringify({rules: serialised(), purpose: purpose()}),
        }).then(function (response) {
            if (response.status === 403) {
                showCount("error", L.forbidden);
                return null;
            }
            return response.json().then(function (data) {
                if (response.ok && typeof data.count === "number") {
                    showCount("ok", interpolate(L.count, {count: data.count.toLocaleString(), ms: data.ms}),
                              data.count);
                } else if (Array.isArray(data.errors)) {
                    showCount("error", data.errors);
                } else {
                    showCount("error", L.countFailed);
                }
            });
        }).catch(function (error) {
            if (error.name !== "AbortError") {
                showCount("error", L.countFailed);
            }
        });
    }

    // --- start ----------------------------------------------------------------------------------------------------

    function showJson(shown) {
        textarea.hidden = !shown;
        jsonApply.hidden = !shown;
        jsonToggle.textContent = shown ? L.hideJson : L.showJson;
    }

    function start() {
        const read = readTextarea();
        if (read === null) {
            notice.hidden = false;
            builder.hidden = true;
            showJson(true);
            return false;
        }
        rules = read;
        notice.hidden = true;
        builder.hidden = false;
        redraw();
        return true;
    }

    jsonToggle.addEventListener("click", function () { showJson(textarea.hidden); });
    jsonApply.addEventListener("click", function () {
        if (start()) {
            showJson(false);
        }
    });
    const purposeField = textarea.form && textarea.form.elements.namedItem("purpose");
    if (purposeField) {
        (purposeField.length !== undefined && !purposeField.options ? Array.from(purposeField) : [purposeField])
            .forEach(function (node) { node.addEventListener("change", countSoon); });
    }

    textarea.parentNode.insertBefore(el("div", {className: "segment-builder-frame"}, [
        notice, builder, countBox, el("div", {className: "segment-json-buttons"}, [jsonToggle, jsonApply]),
    ]), textarea);
    showJson(false);
    start();
}());
